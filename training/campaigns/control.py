"""Campaigns, whichever door (page, API, command) the admin came in by: create one (everything checked before
anything is queued), cancel it, resume it from the stage a round failed at (or whose worker died). What happens
between is training.campaigns.flow's.

A campaign sits above training's services (it drives exports, jobs and evaluations through them, and generation and
judging through theirs); the pages, the API and the command call it directly."""

from __future__ import annotations

import os
import tempfile

import orjson
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from annotation.models import Project
from generation.imports import PromptsRejected, prompts_import
from generation.models import GenerationRun, Prompt, PromptSet
from generation.pairing import STRATEGIES
from generation.plan import plan_clean, slots
from generation.services import generation_run_resume, pairs_options, run_cancel
from judging.checkpoints import describe_base_model
from judging.models import JudgeConfig, JudgeRun
from judging.services import run_resume

from ..evaluations.flow import evaluation_cancel, evaluation_resume
from ..jobs.lifecycle import job_cancel_request, job_requeue, jobs_reap
from ..jobs.spec import spec_from_preset
from ..models import Campaign, CampaignRound, CurationRecipe, Evaluation, TrainingJob
from ..tasks import job_run_task
from .batches import split_batches
from .tasks import campaign_advance_task

State, RoundState = Campaign.State, CampaignRound.State
DEFAULT_PLAN = {"temperatures": [1.0], "samples": 4, "max_tokens": 256}  # RLHFlow: 4-8 samples at T = 1.0
DEFAULT_PAIRING = {"strategy": "best_worst", "per_prompt": 1, "min_margin": 1.0}
MAX_ROUNDS = 10


def _clean_pairing(pairing: dict) -> dict:
    pairing = {**DEFAULT_PAIRING, **(pairing or {})}
    if pairing.get("strategy") not in STRATEGIES:
        raise ValidationError({"pairing": f"strategy must be one of {', '.join(STRATEGIES)}"})
    try:
        options = pairs_options(pairing)
    except TypeError as exc:
        raise ValidationError({"pairing": str(exc)}) from None
    except ValidationError as exc:
        text = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
        raise ValidationError({"pairing": text}) from None
    return {k: getattr(options, k) for k in ("strategy", "per_prompt", "min_margin", "different_generators",
                                             "include_flagged", "seed")}  # fmt: skip


def held_out_set(*, project: Project, name: str, prompts: list[Prompt], user) -> PromptSet:
    """A prompt set of these prompts (with their ids and metadata): the campaign's held-out prompts."""
    with tempfile.NamedTemporaryFile("wb", suffix=".jsonl", delete=False) as tmp:
        for prompt in prompts:
            extra = {k: v for k, v in (prompt.metadata or {}).items() if k not in ("prompt", "id")}
            tmp.write(orjson.dumps({"prompt": prompt.messages, "id": prompt.external_id or str(prompt.pk),
                                    **extra}) + b"\n")  # fmt: skip
    try:
        return prompts_import(project=project, path=tmp.name, name=name[:100], filename="held-out.jsonl", user=user)
    except PromptsRejected as exc:
        raise ValidationError({"eval_prompt_set": f"The held-out prompts cannot be written: {exc}"[:2000]}) from None
    finally:
        os.unlink(tmp.name)


def campaign_create(*, project: Project, user, name: str, base_model: str, prompt_set: PromptSet,
                    recipe: CurationRecipe, rounds: int = 3, per_round: int = 100, judge: JudgeConfig | None = None,
                    eval_prompt_set: PromptSet | None = None, eval_prompts: int = 50, plan: dict | None = None,
                    pairing: dict | None = None, people_k: int = 0, people_minutes: float | None = None,
                    preset: str = "dpo-lora", settings_: dict | None = None, reference: str = "initial",
                    reuse_prompts: bool = False, stop_win_rate: float | None = None, stop_kl: float | None = None,
                    budget_usd=None) -> Campaign:  # fmt: skip
    """Check everything a round will need (so a typo fails now, not three stages in), split the prompts into the
    rounds' batches and the held-out set, and start round 1."""
    if user is None or not user.is_staff:
        raise PermissionDenied("Only admins launch campaigns.")
    name = name.strip()
    if not name:
        raise ValidationError({"name": "A campaign needs a name."})
    for field, thing in (("prompt_set", prompt_set), ("recipe", recipe), ("eval_prompt_set", eval_prompt_set)):
        if thing is not None and thing.project_id != project.pk:
            raise ValidationError({field: "It belongs to another project."})
    if judge is not None and judge.project_id not in (None, project.pk):
        raise ValidationError({"judge": "This judge belongs to another project."})
    if judge is None:
        raise ValidationError({"judge": "Each round is judged against the base and the previous round: choose a "
                                        "judge (people label pairs first when people_k is above 0)."})  # fmt: skip
    if not 1 <= rounds <= MAX_ROUNDS:
        raise ValidationError({"rounds": f"must be between 1 and {MAX_ROUNDS}"})
    if per_round < 1:
        raise ValidationError({"per_round": "must be at least 1"})
    if not 1 <= eval_prompts <= 10000:
        raise ValidationError({"eval_prompts": "must be between 1 and 10000"})
    if not 0 <= people_k <= 20:
        raise ValidationError({"people_k": "must be between 0 (judges only) and 20"})
    if people_minutes is not None and people_minutes <= 0:
        raise ValidationError({"people_minutes": "must be above 0 (or empty: wait for the people)"})
    if stop_win_rate is not None and not 0 <= stop_win_rate <= 1:
        raise ValidationError({"stop_win_rate": "must be between 0 and 1"})
    if stop_kl is not None and stop_kl <= 0:
        raise ValidationError({"stop_kl": "must be above 0"})
    if budget_usd is not None and budget_usd <= 0:
        raise ValidationError({"budget_usd": "must be above 0 (or empty: no budget)"})
    if reference not in Campaign.Reference.values:
        raise ValidationError({"reference": f"must be one of {', '.join(Campaign.Reference.values)}"})
    try:
        describe_base_model(base_model)
    except ValueError as exc:
        raise ValidationError({"base_model": str(exc)}) from None
    plan = plan_clean({**DEFAULT_PLAN, **(plan or {})})
    pairing = _clean_pairing(pairing)
    if len(slots(plan)) < 2:
        raise ValidationError({"plan": "A pair needs two candidates: sample at least 2 per prompt."})
    settings_ = {k: v for k, v in (settings_ or {}).items() if k not in ("base_model", "init_adapter", "reference")}
    try:
        spec = spec_from_preset(preset, {**settings_, "base_model": base_model})
    except (TypeError, ValueError) as exc:
        field, _, message = str(exc).partition(": ")
        raise ValidationError({"settings": f"{field}: {message}" if message else str(exc)}) from None
    if not spec.is_policy:
        raise ValidationError({"preset": "Each round's model writes the next round's candidates: a reward model "
                                         "does not generate."})  # fmt: skip
    pool = list(Prompt.objects.filter(prompt_set=prompt_set).order_by("pk"))
    if eval_prompt_set is None:  # hold out the pool's last prompts: never generated for, never trained on
        if len(pool) <= eval_prompts:
            raise ValidationError({"eval_prompts": f"The prompt set has {len(pool)} prompts: hold out fewer, or "
                                                   "choose a held-out prompt set."})  # fmt: skip
        held, pool = pool[-eval_prompts:], pool[:-eval_prompts]
    else:
        held = None
        if eval_prompt_set.pk == prompt_set.pk:
            raise ValidationError({"eval_prompt_set": "Evaluate on prompts the rounds do not train on."})
    try:
        batches = split_batches([p.pk for p in pool], per_round=per_round, rounds=rounds, reuse=reuse_prompts)
    except ValueError as exc:
        raise ValidationError({"per_round": str(exc)}) from None
    with transaction.atomic():
        if held is not None:
            eval_prompt_set = held_out_set(project=project, name=f"held-out of campaign {name}", prompts=held,
                                           user=user)  # fmt: skip
        campaign = Campaign.objects.create(
            project=project, name=name[:200], base_model=base_model.strip(), prompt_set=prompt_set,
            eval_prompt_set=eval_prompt_set, eval_prompts=eval_prompts, batches=batches, reuse_prompts=reuse_prompts,
            plan=plan, judge=judge, people_k=people_k, people_minutes=people_minutes, pairing=pairing, recipe=recipe,
            preset=preset, settings=settings_, reference=reference, rounds=rounds, stop_win_rate=stop_win_rate,
            stop_kl=stop_kl, budget_usd=budget_usd, created_by=user, started_at=timezone.now(),
            stage="round 1: generate",
        )  # fmt: skip
        CampaignRound.objects.create(campaign=campaign, number=1)
        campaign_advance_task.delay_on_commit(campaign.pk)
    return campaign


def _round_parts(round_: CampaignRound):
    runs = [round_.generation_run, round_.judge_run]
    evaluations = [e for e in (round_.eval_base, round_.eval_previous) if e is not None]
    return [r for r in runs if r is not None], evaluations


def campaign_cancel(*, campaign: Campaign) -> Campaign:
    """Cancel first (so nothing moves it on), then stop whatever the current round has going."""
    if Campaign.objects.filter(pk=campaign.pk, state__in=[State.RUNNING, State.FAILED]).update(
        state=State.CANCELLED, finished_at=timezone.now(), stage="cancelled"
    ):
        for round_ in campaign.round_set.exclude(state=RoundState.SUCCEEDED):
            CampaignRound.objects.filter(pk=round_.pk).update(state=RoundState.CANCELLED, detail="cancelled")
            runs, evaluations = _round_parts(round_)
            for run in runs:
                if run.state in (*run.LIVE, run.State.PAUSED):
                    run_cancel(run=run)
            if round_.job_id:
                job_cancel_request(round_.job_id, why="cancelled with its campaign")
            for evaluation in evaluations:
                evaluation_cancel(evaluation=evaluation)
    campaign.refresh_from_db()
    return campaign


def campaign_resume(*, campaign: Campaign, user) -> Campaign:
    """Go on from where the current round stopped: a failed stage is started again and fills only what is missing
    (candidates, ratings and verdicts already written are kept, cached replies reused); a run or job whose worker
    died is queued again (the job as the same job). Resuming a campaign that is moving changes nothing."""
    if campaign.state not in (State.RUNNING, State.FAILED):
        return campaign
    round_ = campaign.round_set.order_by("-number").first()
    if round_ is not None and round_.state in (RoundState.FAILED, RoundState.RUNNING, RoundState.WAITING):
        _revive(round_, user)
        CampaignRound.objects.filter(pk=round_.pk, state=RoundState.FAILED).update(
            state=RoundState.RUNNING, error="", detail="resuming"
        )
    Campaign.objects.filter(pk=campaign.pk, state__in=[State.RUNNING, State.FAILED]).update(
        state=State.RUNNING, error="", lease_until=None, finished_at=None
    )
    campaign_advance_task.delay(campaign.pk)
    campaign.refresh_from_db()
    return campaign


def _revive(round_: CampaignRound, user) -> None:
    """What the round's stage needs to go on: stopped work is dropped (the stage starts it again over what is
    missing), live work whose worker died is queued again."""
    clear = {}
    run = round_.generation_run
    if run is not None and round_.stage == CampaignRound.Stage.GENERATE:
        if run.state in ("failed", "cancelled", "budget"):
            clear["generation_run"] = None
        elif run.state in (*GenerationRun.LIVE, GenerationRun.State.PAUSED):
            generation_run_resume(run=run)
    judge_run = round_.judge_run
    if judge_run is not None and round_.stage == CampaignRound.Stage.RATE:
        if judge_run.state in ("failed", "cancelled", "budget"):
            clear["judge_run"] = None
        elif judge_run.state in (*JudgeRun.LIVE, JudgeRun.State.PAUSED):
            run_resume(run=judge_run)
    export = round_.export
    if export is not None and export.state == "failed":
        clear["export"] = None
    job = round_.job
    if job is not None and round_.stage == CampaignRound.Stage.TRAIN:
        jobs_reap(job_ids=[job.pk])  # running with a dead worker: failed now, so it can be queued again
        if job_requeue(job.pk):
            job_run_task.delay(job.pk)
        elif TrainingJob.objects.filter(pk=job.pk, state=TrainingJob.State.CANCELLED).exists():
            clear["job"] = None
    for field in ("eval_base", "eval_previous"):
        evaluation = getattr(round_, field)
        if evaluation is not None and evaluation.state == Evaluation.State.FAILED:
            evaluation_resume(evaluation=evaluation, user=user)
        elif evaluation is not None and evaluation.state == Evaluation.State.CANCELLED:
            clear[field] = None
    if clear:
        CampaignRound.objects.filter(pk=round_.pk).update(**clear)
