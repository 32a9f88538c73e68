"""How an evaluation (training.models.Evaluation) runs: starting one (by hand, or automatically when a job
finishes), moving it on when its runs end, resuming, cancelling and opening its A/B pairs to people. Every step is
idempotent: a step is claimed by a conditional UPDATE of the state, generation fills each (prompt, generator, slot)
once, pairs are found again by content hash and a judge run skips verdicts already given, so a double click, a
re-delivered task or a resume never pays for an answer or a verdict twice."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import orjson
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from annotation.imports.fields import content_hash
from annotation.models import Membership, Pair, Project
from annotation.selectors import guidelines_current
from annotation.services.projects import guidelines_update, project_create
from generation.imports import PromptsRejected, prompts_import
from generation.models import GenerationRun, Generator, Prompt, PromptSet
from generation.plan import plan_clean, slots
from generation.services import generation_run_start, generator_create, pair_from_candidates
from judging.models import JudgeConfig, JudgeRun
from judging.services import QueueUnavailable, run_cancel, run_start

from ..models import DatasetExport, Evaluation, TrainingJob
from ..signals import evaluation_ended
from ..storage import export_root, job_dir
from .report import evaluation_answers, evaluation_report

logger = logging.getLogger(__name__)
State = Evaluation.State
RUN_FAILED = ("failed", "cancelled", "budget")
DEFAULT_PLAN = {"temperatures": [0.7], "samples": 1, "top_p": 1.0, "max_tokens": 256}


def job_generator(*, job: TrainingJob, user) -> Generator:
    """A local generator (generation app) for a finished job's model, so the tuned model writes candidates on the
    ``gpu`` queue: the base model with the job's LoRA adapter, or the job's full weights. Asking twice (a double
    click) returns the same generator."""
    if job.state not in TrainingJob.HAS_MODEL:
        raise ValidationError("Only a finished job's model can generate.")
    if job.spec.get("method") == "reward":
        raise ValidationError("A reward model scores responses and does not generate: use it as a scorer instead.")
    out = job_dir(job)
    lora = job.spec.get("lora", True)
    folder = out / ("adapter" if lora else "model")
    if not folder.is_dir():
        raise ValidationError(f"The job's {'adapter' if lora else 'model'} folder is missing ({folder}).")
    name = f"job {str(job.public_id)[:8]}"
    existing = Generator.objects.filter(project=job.project, name=name).first()
    if existing is not None:
        return existing
    values = {"model": job.spec["base_model"], "adapter": str(folder)} if lora else {"model": str(folder)}
    try:
        return generator_create(project=job.project, user=user, name=name, kind=Generator.Kind.LOCAL, **values)
    except IntegrityError:  # the other click of a double click created it first
        return Generator.objects.get(project=job.project, name=name)


def auto_judge(project: Project) -> JudgeConfig | None:
    """The LLM judge an automatic evaluation uses: the one the project's leads ran last, else the project's first,
    else the first shared one; None when there is none. (Reward models are picked by hand.)"""
    llm = JudgeConfig.Kind.LLM
    last = (JudgeRun.objects.filter(project=project, judge__kind=llm).order_by("-created_at").select_related("judge")
            .first())  # fmt: skip
    if last is not None:
        return last.judge
    return (JudgeConfig.objects.filter(project=project, kind=llm).order_by("pk").first()
            or JudgeConfig.objects.filter(project__isnull=True, kind=llm).order_by("pk").first())  # fmt: skip


def held_out_prompts(*, export: DatasetExport, user) -> PromptSet:
    """The prompts of an export's test split as a prompt set (made once per export), with each pair's metadata (task
    type ...) so the report can break the win rate down. The test split was kept out of training by the export."""
    name = f"held-out of export {str(export.public_id)[:8]}"
    existing = PromptSet.objects.filter(project=export.project, name=name).first()
    if existing is not None:
        return existing
    entry = export.files.get("test.jsonl")
    if not entry or not export.rows_test:
        raise ValidationError({"prompt_set": "The export has no test split: choose a prompt set to evaluate on."})
    rows = [orjson.loads(line) for line in (export_root() / entry["path"]).read_bytes().splitlines() if line.strip()]
    metadata = dict(Pair.objects.filter(project=export.project, pk__in=[r.get("pair_id") for r in rows])
                    .values_list("pk", "metadata"))  # fmt: skip
    with tempfile.NamedTemporaryFile("wb", suffix=".jsonl", delete=False) as tmp:
        for row in rows:
            prompt = row["prompt"]
            extra = {k: v for k, v in (metadata.get(row.get("pair_id")) or {}).items() if k not in ("prompt", "id")}
            tmp.write(orjson.dumps({"prompt": prompt, "id": str(row.get("pair_id", "")), **extra}) + b"\n")
    try:
        return prompts_import(project=export.project, path=tmp.name, name=name, filename="test.jsonl", user=user)
    except (PromptsRejected, ValidationError) as exc:
        existing = PromptSet.objects.filter(project=export.project, name=name).first()
        if existing is not None:  # the other click of a double click made it first
            return existing
        raise ValidationError({"prompt_set": f"The export's held-out prompts cannot be read: {exc}"[:2000]}) from None
    finally:
        os.unlink(tmp.name)


def base_generator(*, job: TrainingJob, user) -> Generator:
    """A local generator for the job's base model without any adapter (one per project and base model)."""
    return model_generator(project=job.project, model=job.spec["base_model"], user=user)


def model_generator(*, project: Project, model: str, user) -> Generator:
    """A local generator for a base model without any adapter (one per project and model)."""
    name = f"base {Path(model).name or model}"[:100]
    existing = Generator.objects.filter(project=project, kind=Generator.Kind.LOCAL, model=model, adapter="")
    if (found := existing.order_by("pk").first()) is not None:
        return found
    try:
        return generator_create(project=project, user=user, name=name, kind=Generator.Kind.LOCAL, model=model)
    except (IntegrityError, ValidationError):
        found = existing.order_by("pk").first()
        if found is None:
            raise
        return found


def ab_project_for(evaluation: Evaluation, user) -> Project:
    """The project's evaluation project: where A/B pairs of its evaluations live, apart from its training pool (so
    they are never curated into an export), with its guidelines and criteria and its people."""
    project = evaluation.project
    with transaction.atomic():
        Project.objects.select_for_update().filter(pk=project.pk).get()  # one evaluation project per project
        previous = Evaluation.objects.filter(project=project, ab_project__isnull=False).order_by("-pk").first()
        if previous is not None:
            ab = previous.ab_project
        else:  # a new project, never one found by its name: a slug anyone could have taken
            base = f"{project.slug[:60]}-evaluations"
            slug = next(s for s in (base, *(f"{base}-{i}" for i in range(2, 1000)))
                        if not Project.objects.filter(slug=s).exists())  # fmt: skip
            ab = project_create(name=f"{project.name} · A/B evaluations"[:200], slug=slug, created_by=user,
                                criteria=project.criteria, allow_both_bad=project.allow_both_bad,
                                overlap_k=project.overlap_k, repeat_rate=0.0, calibration_rate=0.0,
                                description=f"Blinded A/B pairs of {project.name}'s model evaluations: each pair "
                                "is two models' answers to a held-out prompt.")  # fmt: skip
            guidelines = guidelines_current(project)
            if guidelines is not None:
                guidelines_update(project=ab, body=guidelines.body, user=user)
            # it holds this project's evaluation pairs until the first evaluation records it
            Evaluation.objects.filter(pk=evaluation.pk).update(ab_project=ab)
        members_sync(project, ab)
    return ab


def members_sync(project: Project, ab: Project) -> None:
    """The evaluation project's people are exactly the project's, with the same roles (someone removed from the
    project loses the evaluation pairs too)."""
    people = dict(Membership.objects.filter(project=project).values_list("user_id", "role"))
    Membership.objects.filter(project=ab).exclude(user_id__in=list(people)).delete()
    for user_id, role in people.items():
        Membership.objects.update_or_create(project=ab, user_id=user_id, defaults={"role": role})


def _plan(plan: dict | None, job: TrainingJob) -> dict:
    plan = plan_clean({**DEFAULT_PLAN, "seed": job.spec.get("seed", 0), **(plan or {})})
    if len(slots(plan)) != 1:
        raise ValidationError({"plan": "One temperature and one sample: each model gives one answer per prompt."})
    return plan


def evaluation_start(*, job: TrainingJob, user, judge: JudgeConfig | None = None, prompt_set: PromptSet | None = None,
                     baseline_job: TrainingJob | None = None, limit: int | None = None, plan: dict | None = None,
                     automatic: bool = False) -> Evaluation:  # fmt: skip
    """Start an evaluation of a finished job against its base model (or ``baseline_job``'s model): both answer the
    first ``limit`` prompts of ``prompt_set`` (the export's test split by default), then ``judge`` (the project's
    last used by default) compares them. The same evaluation asked for again while it runs is returned as is."""
    if job.state not in TrainingJob.HAS_MODEL:
        raise ValidationError("Only a finished job can be evaluated.")
    project = job.project
    if baseline_job is not None:
        if baseline_job.pk == job.pk:
            raise ValidationError({"baseline_job": "Compare the job with another job, or with its base model."})
        if baseline_job.project_id != project.pk or baseline_job.state not in TrainingJob.HAS_MODEL:
            raise ValidationError({"baseline_job": "Choose a finished job of the same project."})
    judge = judge or auto_judge(project)
    if judge is None:
        raise ValidationError({"judge": "The project has no judge yet: add one on its Judges page."})
    if judge.project_id not in (None, project.pk):
        raise ValidationError({"judge": "This judge belongs to another project."})
    if prompt_set is not None and prompt_set.project_id != project.pk:
        raise ValidationError({"prompt_set": "This prompt set belongs to another project."})
    limit = limit or job.spec.get("eval_prompts") or 50
    if limit < 1:
        raise ValidationError({"limit": "The limit must be at least 1."})
    plan = _plan(plan, job)
    prompt_set = prompt_set or held_out_prompts(export=job.export, user=user)
    tuned = job_generator(job=job, user=user)
    baseline = job_generator(job=baseline_job, user=user) if baseline_job else base_generator(job=job, user=user)
    with transaction.atomic():
        TrainingJob.objects.select_for_update().filter(pk=job.pk).get()  # one start at a time per job
        same = Evaluation.objects.filter(job=job, baseline_job=baseline_job, prompt_set=prompt_set, judge=judge,
                                         plan=plan, limit=limit, state__in=Evaluation.LIVE).first()  # fmt: skip
        if same is not None:
            return same
        evaluation = Evaluation.objects.create(
            project=project, job=job, baseline_job=baseline_job, prompt_set=prompt_set, judge=judge, plan=plan,
            limit=limit, automatic=automatic, created_by=user, started_at=timezone.now(),
            stage="both models answer the prompts", tuned_generator=tuned, baseline_generator=baseline,
        )  # fmt: skip
    _generate(evaluation, user)
    evaluation.refresh_from_db()
    return evaluation


def _generate(evaluation: Evaluation, user) -> None:
    """Both models' runs, each recorded as soon as it exists (so a failure or a cancel can stop it)."""
    for field, generator in (("tuned_run", evaluation.tuned_generator),
                             ("baseline_run", evaluation.baseline_generator)):  # fmt: skip
        try:
            run = generation_run_start(
                project=evaluation.project,
                prompt_set=evaluation.prompt_set,
                generator=generator,
                plan=evaluation.plan,
                user=user,
                limit=evaluation.limit,
            )
        except (QueueUnavailable, ValidationError) as exc:
            _fail(evaluation, " ".join(getattr(exc, "messages", [str(exc)])))
            raise
        Evaluation.objects.filter(pk=evaluation.pk).update(**{field: run})
        setattr(evaluation, field, run)
    if not Evaluation.objects.filter(pk=evaluation.pk, state__in=Evaluation.LIVE).exists():
        _stop_runs(evaluation)  # cancelled while its runs were being started
        return
    evaluation_advance(evaluation.pk)  # a run with nothing left to do may have ended before it was recorded here


def _stop_runs(evaluation: Evaluation) -> None:
    """Cancel whatever of the evaluation's runs is still going (nothing more is paid for a stopped evaluation)."""
    evaluation.refresh_from_db(fields=["tuned_run", "baseline_run", "judge_run"])
    for run in (evaluation.tuned_run, evaluation.baseline_run, evaluation.judge_run):
        if run is not None and run.state in (*run.LIVE, run.State.PAUSED):
            run_cancel(run=run)


def _fail(evaluation: Evaluation, reason: str) -> None:
    if Evaluation.objects.filter(pk=evaluation.pk, state__in=Evaluation.LIVE).update(
        state=State.FAILED, error=reason[:4000], finished_at=timezone.now(), stage="failed"
    ):
        _stop_runs(evaluation)
        evaluation_ended.send(sender=Evaluation, evaluation_id=evaluation.pk)


def evaluation_advance(evaluation_id: int) -> None:
    """Move a live evaluation on when the runs it waits for have ended (called by the run_ended receiver's task
    and by beat; safe to call any time, any number of times)."""
    evaluation = Evaluation.objects.select_related("tuned_run", "baseline_run", "judge_run", "judge").get(
        pk=evaluation_id
    )
    if evaluation.state == State.GENERATING:
        runs = [evaluation.tuned_run, evaluation.baseline_run]
        if any(run is None for run in runs):
            return  # still being started
        stopped = [run for run in runs if run.state in RUN_FAILED]
        if stopped:
            _fail(evaluation, f"A generation run stopped ({stopped[0].state}): {stopped[0].error}")
            return
        if all(run.state == GenerationRun.State.SUCCEEDED for run in runs):
            if Evaluation.objects.filter(pk=evaluation.pk, state=State.GENERATING).update(
                state=State.JUDGING, stage="pairing the answers"
            ):
                try:
                    _judge(evaluation)
                except Exception as exc:  # noqa: BLE001 - never left judging without a judge run: failed, resumable
                    logger.exception("evaluation %s: pairing or starting the judge failed", evaluation.pk)
                    _fail(evaluation, f"Pairing the answers or starting the judge failed: {exc}")
    elif evaluation.state == State.JUDGING and evaluation.judge_run is not None:
        run = evaluation.judge_run
        if run.state in RUN_FAILED:
            _fail(evaluation, f"The judge run stopped ({run.state}): {run.error} Resume the evaluation to go on; "
                              "verdicts already given are kept.")  # fmt: skip
        elif run.state == JudgeRun.State.SUCCEEDED:
            _finish(evaluation)


def same_text(x: str, y: str) -> bool:
    return " ".join(x.lower().split()) == " ".join(y.lower().split())


def _judge(evaluation: Evaluation) -> None:
    """Pair the two answers of every prompt in the evaluation project (found again when an earlier evaluation
    made the same pair) and start the judge run over them; identical answers are ties nobody needs to judge."""
    user = evaluation.created_by
    if evaluation.judge is None or evaluation.tuned_generator is None or evaluation.baseline_generator is None:
        _fail(evaluation, "Its judge or one of its generators was deleted.")
        return
    ab = ab_project_for(evaluation, user)
    answers = evaluation_answers(evaluation)
    prompts = Prompt.objects.in_bulk(list(answers))
    links, identical = [], []
    for prompt_id, (tuned, baseline) in answers.items():
        if same_text(tuned.text, baseline.text):
            identical.append(prompt_id)
            continue
        digest = content_hash(prompts[prompt_id].messages, tuned.text, baseline.text)
        pair = Pair.objects.filter(project=ab, content_hash=digest).first()
        if pair is None:
            try:
                with transaction.atomic():
                    pair = pair_from_candidates(
                        project=ab, prompt=prompts[prompt_id], a=tuned, b=baseline, digest=digest,
                        strategy="evaluation", margin=None, user=user, open_slots=0,
                        model_names=("", ""),  # which answer is whose stays with the evaluation (PairOrigin too)
                    )  # fmt: skip
            except IntegrityError:
                pair = Pair.objects.get(project=ab, content_hash=digest)
        links.append([prompt_id, pair.pk, pair.response_a == tuned.text])
    Evaluation.objects.filter(pk=evaluation.pk).update(ab_project=ab, pair_ids=links, identical=identical,
                                                       stage="the judge compares the answers")  # fmt: skip
    if not links:
        _finish(evaluation)
        return
    try:
        run = run_start(project=ab, judge=evaluation.judge, user=user, pair_ids=[p for _, p, _ in links],
                        judge_project=evaluation.project)  # fmt: skip
    except (QueueUnavailable, ValidationError) as exc:
        _fail(evaluation, " ".join(getattr(exc, "messages", [str(exc)])))
        return
    Evaluation.objects.filter(pk=evaluation.pk).update(judge_run=run)
    if not Evaluation.objects.filter(pk=evaluation.pk, state__in=Evaluation.LIVE).exists():
        run_cancel(run=run)  # cancelled while the run was being started
        return
    evaluation_advance(evaluation.pk)  # every verdict given before: the run may have ended before it was recorded


def _finish(evaluation: Evaluation) -> None:
    evaluation.refresh_from_db()
    report = evaluation_report(evaluation)
    if Evaluation.objects.filter(pk=evaluation.pk, state=State.JUDGING).update(
        state=State.SUCCEEDED, report=report, finished_at=timezone.now(), stage="done", error=""
    ):
        evaluation_ended.send(sender=Evaluation, evaluation_id=evaluation.pk)


def evaluation_refresh(*, evaluation: Evaluation) -> Evaluation:
    """Compute a finished evaluation's report again (people's A/B labels come in after the judge is done)."""
    if evaluation.state == State.SUCCEEDED:
        Evaluation.objects.filter(pk=evaluation.pk).update(report=evaluation_report(evaluation))
    evaluation.refresh_from_db()
    return evaluation


def evaluation_resume(*, evaluation: Evaluation, user) -> Evaluation:
    """Go on from where a failed evaluation stopped: missing answers are generated (answers already written are
    kept), a new judge run over the same pairs asks only for the missing verdicts (cached replies reused)."""
    if evaluation.state != State.FAILED:
        return evaluation
    judging = bool(evaluation.pair_ids) and evaluation.judge_run_id is not None
    state = State.JUDGING if judging else State.GENERATING
    # the claim drops the stopped runs, so nothing that reads the evaluation meanwhile fails it again
    cleared = {"judge_run": None} if judging else {"tuned_run": None, "baseline_run": None, "judge_run": None}
    if not Evaluation.objects.filter(pk=evaluation.pk, state=State.FAILED).update(
        state=state, error="", finished_at=None, stage="resuming", **cleared
    ):
        return evaluation
    evaluation.refresh_from_db()
    if judging:
        ab = evaluation.ab_project
        try:
            run = run_start(project=ab, judge=evaluation.judge, user=user,
                            pair_ids=[p for _, p, _ in evaluation.pair_ids],
                            judge_project=evaluation.project)  # fmt: skip
        except (QueueUnavailable, ValidationError) as exc:
            _fail(evaluation, " ".join(getattr(exc, "messages", [str(exc)])))
        else:
            Evaluation.objects.filter(pk=evaluation.pk).update(judge_run=run, stage="the judge compares the answers")
            evaluation_advance(evaluation.pk)
    else:
        try:
            _generate(evaluation, user)
        except (QueueUnavailable, ValidationError):
            pass  # recorded on the evaluation by _generate
    evaluation.refresh_from_db()
    return evaluation


def evaluation_cancel(*, evaluation: Evaluation) -> Evaluation:
    """Cancel first, then stop the runs (a run that ends reads a cancelled evaluation and leaves it alone)."""
    if Evaluation.objects.filter(pk=evaluation.pk, state__in=Evaluation.LIVE).update(
        state=State.CANCELLED, finished_at=timezone.now(), stage="cancelled"
    ):
        _stop_runs(evaluation)
    evaluation.refresh_from_db()
    return evaluation


def evaluation_send_to_people(*, evaluation: Evaluation) -> Evaluation:
    """Open the evaluation's A/B pairs to the evaluation project's annotators (k each, the project's overlap), who
    see them blinded and in random sides like any pair; the report then shows their win rate beside the judge's."""
    if not evaluation.pair_ids or evaluation.ab_project is None:
        raise ValidationError("This evaluation has no A/B pairs yet (wait until both models have answered).")
    ab = evaluation.ab_project
    members_sync(evaluation.project, ab)
    Pair.objects.filter(project=ab, pk__in=[p for _, p, _ in evaluation.pair_ids], gold="", open_slots=0,
                        label_count=0).update(open_slots=ab.overlap_k)  # fmt: skip
    Evaluation.objects.filter(pk=evaluation.pk, sent_to_people_at__isnull=True).update(sent_to_people_at=timezone.now())
    evaluation.refresh_from_db()
    return evaluation


def evaluation_after_job(job_id: int) -> Evaluation | None:
    """A finished job's automatic evaluation, when its spec asks for one (eval_prompts > 0) and the project has a
    judge; None (with the reason logged) otherwise."""
    job = TrainingJob.objects.select_related("project", "export", "created_by").filter(pk=job_id).first()
    if job is None:
        return None  # deleted (with its project) before its task ran
    if not job.spec.get("eval_prompts") or job.state not in TrainingJob.HAS_MODEL:
        return None
    if job.spec.get("method") == "reward":
        return None  # a scorer answers no prompts: its held-out accuracy is in the job's own evaluation
    if Evaluation.objects.filter(job=job, automatic=True).exists():
        return None  # a re-delivered task
    try:
        return evaluation_start(job=job, user=job.created_by, automatic=True,
                                plan={"max_tokens": job.spec.get("eval_max_new_tokens", 64) * 4})  # fmt: skip
    except (ValidationError, QueueUnavailable) as exc:
        logger.info("job %s: no automatic evaluation: %s", job.pk, exc)
        return None


def evaluations_stuck() -> list[int]:
    """Live evaluations whose runs have all ended: beat moves them on in case a run_ended task was lost."""
    ended = ["succeeded", *RUN_FAILED]
    return list(Evaluation.objects.filter(
        Q(state=State.GENERATING, tuned_run__state__in=ended, baseline_run__state__in=ended)
        | Q(state=State.JUDGING, judge_run__state__in=ended)
    ).values_list("pk", flat=True))  # fmt: skip
