"""How a campaign's round moves on: generate -> pair -> rate -> curate -> train -> evaluate, then the stop rules and
the next round. ``campaign_advance`` is called whenever something a round waits for ends (a generation or judge run,
a job, an evaluation: training.campaigns.receivers), by beat every minute (people's deadline, lost signals) and by
resume; it is safe to call any time, from any process, any number of times.

One process moves a campaign at a time (a lease taken by a conditional UPDATE; a caller that finds it taken leaves a
poke, which the holder sees before it lets go). Every stage starts its work once (the round records the run, export,
job or evaluation it started before anything waits on it) and each kind of work fills only what is missing: a
candidate per (prompt, generator, slot), a rating per (candidate, judge), a verdict per (pair, judge, order), a pair
per content hash. So a re-delivered task, a resume or a double click never duplicates or pays for anything twice.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils import timezone

from annotation.models import Pair
from generation.models import GenerationRun, PairOrigin
from generation.plan import plan_clean
from generation.services import QueueUnavailable, generation_run_start, pairs_build, pairs_options
from judging.models import JudgeRun
from judging.services import run_start

from ..evaluations.flow import DEFAULT_PLAN as EVAL_PLAN
from ..evaluations.flow import evaluation_start, job_generator, model_generator
from ..jobs.spec import spec_from_preset
from ..models import Campaign, CampaignRound, DatasetExport, Evaluation, TrainingJob
from ..services.exports import export_create
from ..services.jobs import job_create
from .report import campaign_cost, round_report

logger = logging.getLogger(__name__)
Stage, RoundState, State = CampaignRound.Stage, CampaignRound.State, Campaign.State
LEASE = timedelta(minutes=15)
RUN_STOPPED = ("failed", "cancelled", "budget")
# recipes whose preference comes from the candidates' scores (the rest from people): no pairwise judge run needed
SCORE_SOURCES = ("scores", "human_else_scores")


class RoundFailed(Exception):
    """A stage cannot go on: the round fails with this reason and waits for a resume."""


def campaign_advance(campaign_id: int) -> None:
    """Move the campaign on as far as it can go now."""
    while True:
        if not _acquire(campaign_id):
            Campaign.objects.filter(pk=campaign_id).update(poked=True)
            if not _acquire(campaign_id):
                return  # the holder sees the poke before it lets go
        try:
            _advance(campaign_id)
        finally:
            Campaign.objects.filter(pk=campaign_id).update(lease_until=None)
        if not Campaign.objects.filter(pk=campaign_id, poked=True).update(poked=False):
            return


def _acquire(campaign_id: int) -> bool:
    now = timezone.now()
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    return bool(Campaign.objects.filter(free, pk=campaign_id, state=State.RUNNING).update(
        lease_until=now + LEASE, poked=False
    ))  # fmt: skip


def current_round(campaign: Campaign) -> CampaignRound | None:
    return campaign.round_set.order_by("-number").first()


def _advance(campaign_id: int) -> None:
    while True:
        campaign = Campaign.objects.select_related("judge", "recipe", "prompt_set", "created_by").get(pk=campaign_id)
        if campaign.state != State.RUNNING:
            return
        round_ = current_round(campaign)
        if round_ is None:
            round_ = _next_round(campaign, 1)
        if round_.state != RoundState.RUNNING and round_.state != RoundState.WAITING:
            if round_.state == RoundState.SUCCEEDED and _after_round(campaign, round_):
                continue
            return
        try:
            moved = STAGES[round_.stage](campaign, round_)
        except RoundFailed as exc:
            round_fail(campaign, round_, str(exc))
            return
        except (ValidationError, QueueUnavailable) as exc:
            round_fail(campaign, round_, " ".join(getattr(exc, "messages", [str(exc)])))
            return
        except Exception as exc:  # noqa: BLE001 - any failure leaves the round failed and resumable, never stuck
            logger.exception("campaign %s round %s: stage %s failed", campaign.pk, round_.number, round_.stage)
            round_fail(campaign, round_, f"{type(exc).__name__}: {exc}")
            return
        if not moved:
            return


def _set(round_: CampaignRound, **fields) -> None:
    CampaignRound.objects.filter(pk=round_.pk).update(**fields)
    for key, value in fields.items():
        setattr(round_, key, value)


def _to(round_: CampaignRound, stage: str, detail: str = "") -> bool:
    _set(round_, stage=stage, state=RoundState.RUNNING, detail=detail[:300])
    Campaign.objects.filter(pk=round_.campaign_id).update(stage=f"round {round_.number}: {stage}")
    return True


def round_fail(campaign: Campaign, round_: CampaignRound, reason: str) -> None:
    _set(round_, state=RoundState.FAILED, error=reason[:4000], detail="failed")
    Campaign.objects.filter(pk=campaign.pk, state=State.RUNNING).update(
        state=State.FAILED, error=f"Round {round_.number}, {round_.get_stage_display().lower()}: {reason}"[:4000],
        stage=f"round {round_.number}: {round_.stage} failed",
    )  # fmt: skip


def _next_round(campaign: Campaign, number: int) -> CampaignRound:
    round_, _ = CampaignRound.objects.get_or_create(campaign=campaign, number=number)
    Campaign.objects.filter(pk=campaign.pk).update(stage=f"round {number}: generate", started_at=campaign.started_at
                                                   or timezone.now())  # fmt: skip
    return round_


def previous_round(round_: CampaignRound) -> CampaignRound | None:
    return CampaignRound.objects.filter(campaign=round_.campaign_id, number=round_.number - 1).first()


def needs_scores(campaign: Campaign) -> bool:
    """best_worst and best_random pair by score (and a scores recipe labels by them): the judge rates every
    candidate on its own as it comes in."""
    by_score = campaign.pairing.get("strategy", "best_worst") != "all"
    return by_score or campaign.recipe.config.get("source") in SCORE_SOURCES


# --- the stages: each returns True when the round moved to its next stage, False while it waits ---


def _generate(campaign: Campaign, round_: CampaignRound) -> bool:
    run = GenerationRun.objects.filter(pk=round_.generation_run_id).first()
    if run is None:
        user = campaign.created_by
        if round_.number == 1:
            generator = model_generator(project=campaign.project, model=campaign.base_model, user=user)
        else:
            generator = job_generator(job=previous_round(round_).job, user=user)
        rater = campaign.judge if needs_scores(campaign) else None
        if needs_scores(campaign) and rater is None:
            raise RoundFailed("Pairing by score needs a judge to rate the candidates.")
        _set(round_, generator=generator, detail=f"{generator.name} writes {len(_batch(campaign, round_))} prompts' "
                                                 "candidates")  # fmt: skip
        run = generation_run_start(project=campaign.project, prompt_set=campaign.prompt_set, generator=generator,
                                   plan=campaign.plan, user=user, rater=rater,
                                   prompt_ids=_batch(campaign, round_))  # fmt: skip
        _set(round_, generation_run=run)
        run.refresh_from_db()
    if run.state in RUN_STOPPED:
        raise RoundFailed(f"The generation run stopped ({run.state}): {run.error}")
    if run.state != GenerationRun.State.SUCCEEDED:
        return False
    return _to(round_, Stage.PAIR, f"{run.candidates_done} candidates")


def _batch(campaign: Campaign, round_: CampaignRound) -> list[int]:
    return campaign.batches[round_.number - 1]


def _pair(campaign: Campaign, round_: CampaignRound) -> bool:
    options = pairs_options({**campaign.pairing, "rater": campaign.judge_id if needs_scores(campaign) else None})
    built = pairs_build(prompt_set=campaign.prompt_set, options=options, user=campaign.created_by,
                generator_ids=[round_.generator_id], prompt_ids=_batch(campaign, round_),
                open_slots=campaign.people_k)  # fmt: skip
    # the round's pairs: those made of its generator's candidates of its prompts (built now, or before)
    pair_ids = sorted(PairOrigin.objects.filter(
        pair__project=campaign.project, candidate_a__generator=round_.generator_id,
        candidate_b__generator=round_.generator_id, candidate_a__prompt_id__in=_batch(campaign, round_),
    ).values_list("pair_id", flat=True))  # fmt: skip
    if not pair_ids:
        seen = built.preview
        raise RoundFailed(f"No pairs: of the candidates, {seen.left_out_flagged} were flagged and "
                          f"{seen.left_out_unscored} had no score; {seen.prompts_without_pair} of {seen.prompts} "
                          "prompts had no two far enough apart in score (or different). Sample more (samples, "
                          "temperatures), include flagged candidates or lower the minimum margin.")  # fmt: skip
    _set(round_, pair_ids=pair_ids, rate_started_at=timezone.now())
    return _to(round_, Stage.RATE, f"{len(pair_ids)} pairs")


def _rate(campaign: Campaign, round_: CampaignRound) -> bool:
    pairs = Pair.objects.filter(pk__in=round_.pair_ids)
    if campaign.people_k and round_.judge_run_id is None:
        done = pairs.filter(label_count__gte=campaign.people_k).count()
        deadline = (round_.rate_started_at + timedelta(minutes=campaign.people_minutes)
                    if campaign.people_minutes is not None else None)  # fmt: skip
        if done < len(round_.pair_ids) and (deadline is None or timezone.now() < deadline):
            until = f"; the judge labels the rest at {timezone.localtime(deadline):%H:%M}" if deadline else ""
            _set(round_, state=RoundState.WAITING, detail=f"people: {done} of {len(round_.pair_ids)} pairs have "
                                                          f"{campaign.people_k} labels{until}")  # fmt: skip
            return False
        _set(round_, state=RoundState.RUNNING)
    run = JudgeRun.objects.filter(pk=round_.judge_run_id).first()
    if run is None:
        left = pairs.filter(label_count__lt=campaign.people_k) if campaign.people_k else pairs
        left_ids = list(left.values_list("pk", flat=True))
        if campaign.recipe.config.get("source") in SCORE_SOURCES:
            return _to(round_, Stage.CURATE, "labelled by the candidates' scores")
        if not left_ids or campaign.judge is None:
            return _to(round_, Stage.CURATE, "labelled by people")
        Pair.objects.filter(pk__in=left_ids, label_count=0).update(open_slots=0)  # the judge has them now
        run = run_start(project=campaign.project, judge=campaign.judge, user=campaign.created_by, pair_ids=left_ids)
        _set(round_, judge_run=run, detail=f"the judge labels {len(left_ids)} pairs")
        run.refresh_from_db()
    if run.state in RUN_STOPPED:
        raise RoundFailed(f"The judge run stopped ({run.state}): {run.error}")
    if run.state != JudgeRun.State.SUCCEEDED:
        return False
    return _to(round_, Stage.CURATE, "labelled")


def _spec(campaign: Campaign):
    return spec_from_preset(campaign.preset, {**campaign.settings, "base_model": campaign.base_model})


def _curate(campaign: Campaign, round_: CampaignRound) -> bool:
    export = DatasetExport.objects.filter(pk=round_.export_id).first()
    if export is None:
        export = export_create(project=campaign.project, recipe=campaign.recipe, fmt=_spec(campaign).export_format,
                               user=campaign.created_by, seed=round_.number, run_now=True,
                               pair_ids=round_.pair_ids)  # fmt: skip
        _set(round_, export=export)
    if export.state == DatasetExport.State.FAILED:
        raise RoundFailed(f"The export failed: {export.error}")
    if export.state != DatasetExport.State.SUCCEEDED:
        return False
    if not export.rows_train:
        raise RoundFailed(f"The recipe kept no training rows of the round's {len(round_.pair_ids)} pairs; see the "
                          "export's funnel, or loosen the recipe.")  # fmt: skip
    return _to(round_, Stage.TRAIN, f"{export.rows_train} training rows")


def _train(campaign: Campaign, round_: CampaignRound) -> bool:
    job = TrainingJob.objects.filter(pk=round_.job_id).first()
    if job is None:
        settings_ = {**campaign.settings, "base_model": campaign.base_model, "eval_prompts": 0}
        previous = previous_round(round_)
        if previous is not None:  # continue the previous round's adapter (training.runner: continued)
            adapter = job_generator(job=previous.job, user=campaign.created_by).adapter
            settings_ |= {"init_adapter": adapter, "reference": campaign.reference}
        job = job_create(export=round_.export, user=campaign.created_by, preset=campaign.preset,
                         settings_=settings_, name=f"{campaign.name} · round {round_.number}")  # fmt: skip
        _set(round_, job=job, detail="training")
        return False
    if job.state in TrainingJob.LIVE:
        _set(round_, detail=f"training: step {job.step} of {job.max_steps or '?'}")
        return False
    if job.state not in TrainingJob.HAS_MODEL:
        raise RoundFailed(f"The training job ended {job.state}: {job.error or job.stage}")
    return _to(round_, Stage.EVALUATE, f"trained {job.step} steps")


def _evaluate(campaign: Campaign, round_: CampaignRound) -> bool:
    job = round_.job
    plan = plan_clean({**EVAL_PLAN, "max_tokens": campaign.plan["max_tokens"], "seed": campaign.plan["seed"]})
    common = {"job": job, "user": campaign.created_by, "judge": campaign.judge, "prompt_set": campaign.eval_prompt_set,
              "limit": campaign.eval_prompts, "plan": plan}  # fmt: skip
    if round_.eval_base_id is None:
        _set(round_, eval_base=evaluation_start(**common), detail="judged against the base model")
    previous = previous_round(round_)
    if previous is not None and round_.eval_previous_id is None:
        _set(round_, eval_previous=evaluation_start(**common, baseline_job=previous.job),
             detail="judged against the base model and the previous round")  # fmt: skip
    evaluations = [e for e in (round_.eval_base, round_.eval_previous) if e is not None]
    for evaluation in evaluations:
        evaluation.refresh_from_db(fields=["state", "error"])
        if evaluation.state in (Evaluation.State.FAILED, Evaluation.State.CANCELLED):
            raise RoundFailed(f"An evaluation ended {evaluation.state}: {evaluation.error}")
    if any(e.state != Evaluation.State.SUCCEEDED for e in evaluations):
        return False
    _set(round_, stage=Stage.DONE, state=RoundState.SUCCEEDED, detail="done", finished_at=timezone.now(),
         report=round_report(round_))  # fmt: skip
    return True


STAGES = {Stage.GENERATE: _generate, Stage.PAIR: _pair, Stage.RATE: _rate, Stage.CURATE: _curate,
          Stage.TRAIN: _train, Stage.EVALUATE: _evaluate}  # fmt: skip


def stop_reason(campaign: Campaign, round_: CampaignRound) -> str:
    """Why the campaign stops after this round ("" to go on): a stop rule, or the last round."""
    report = round_.report
    previous = (report.get("vs_previous") or {}).get("win_rate")
    if campaign.stop_win_rate is not None and previous is not None and previous < campaign.stop_win_rate:
        return (f"Round {round_.number} won {previous:.0%} against round {round_.number - 1}, below the "
                f"{campaign.stop_win_rate:.0%} the campaign asks for.")  # fmt: skip
    kl = report.get("kl")
    if campaign.stop_kl is not None and kl is not None and kl > campaign.stop_kl:
        return f"Round {round_.number}'s KL from the base is {kl:.3g}, over the budget of {campaign.stop_kl:g}."
    spent = campaign_cost(campaign)
    if campaign.budget_usd is not None and spent >= campaign.budget_usd:
        return f"The campaign has spent ${spent:.4f} of its ${campaign.budget_usd:.4f} budget."
    return ""


def _after_round(campaign: Campaign, round_: CampaignRound) -> bool:
    """Stop, finish or start the next round; True when there is a next round to move on."""
    if round_.number >= campaign.rounds:
        Campaign.objects.filter(pk=campaign.pk, state=State.RUNNING).update(
            state=State.FINISHED, finished_at=timezone.now(), stage=f"finished after {round_.number} rounds"
        )
        return False
    reason = stop_reason(campaign, round_)
    if reason:
        Campaign.objects.filter(pk=campaign.pk, state=State.RUNNING).update(
            state=State.STOPPED, finished_at=timezone.now(), stop_reason=reason[:500],
            stage=f"stopped after round {round_.number}",
        )  # fmt: skip
        return False
    _next_round(campaign, round_.number + 1)
    return True
