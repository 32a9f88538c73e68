"""Reads for the curation, export and training job pages: latest recipes, recent exports and jobs, the exports a job
can start from, and a job's live progress."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q, Sum
from django.urls import reverse
from django.utils import timezone

from annotation.models import ImportBatch, Label, Membership, Pair, Project
from judging.models import JudgeConfig, JudgeRun, Verdict

from .models import Campaign, CurationRecipe, DatasetExport, Evaluation, TrainingJob, TrainingMetric


def recipes_latest(project: Project) -> list[CurationRecipe]:
    """The latest version of each recipe."""
    latest = {}
    for recipe in CurationRecipe.objects.filter(project=project).order_by("name", "-version"):
        latest.setdefault(recipe.name, recipe)
    return list(latest.values())


def exports_recent(project: Project, limit: int = 100):
    """The project's latest exports, newest first."""
    return DatasetExport.objects.filter(project=project).select_related("recipe", "created_by")[:limit]


# The series the job page charts, in TRL's names (KTO logs kl; ORPO/SimPO log their own rewards; a reward model
# logs accuracy, margin and its min/mean/max reward).
CHARTED = ("loss", "rewards/margins", "rewards/accuracies", "rewards/chosen", "rewards/rejected", "logps/chosen",
           "logps/rejected", "kl", "kl_estimate", "answer_tokens", "accuracy", "margin", "mean_reward", "min_reward",
           "max_reward", "learning_rate", "tokens_per_s", "gpu_memory_gib", "grad_norm")  # fmt: skip


def jobs_recent(limit: int = 100):
    return TrainingJob.objects.select_related("export", "export__recipe", "project", "created_by")[:limit]


def exports_trainable():
    return (
        DatasetExport.objects.filter(state=DatasetExport.State.SUCCEEDED, rows_train__gt=0)
        .select_related("project", "recipe")
        .order_by("-created_at")
    )


def job_eta_seconds(job: TrainingJob) -> float | None:
    """Seconds left, from the pace between the first and the last recorded step."""
    if job.state != TrainingJob.State.RUNNING or not job.max_steps or not job.step:
        return None
    first = TrainingMetric.objects.filter(job=job).order_by("step").values_list("step", "at").first()
    if first is None or job.step <= first[0]:
        return None
    last_at = job.heartbeat_at or timezone.now()
    per_step = (last_at - first[1]).total_seconds() / (job.step - first[0])
    return max(0.0, per_step * (job.max_steps - job.step))


def after_step(value) -> int:
    """The ``?after=`` of a progress poll: metric rows after this step (-1, all, when missing or malformed)."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


def job_progress(job: TrainingJob, *, after_step: int = -1) -> dict:
    """What the job page polls: state, stage, step, ETA, the metric rows after ``after_step`` and the log tail."""
    rows = TrainingMetric.objects.filter(job=job, step__gt=after_step).order_by("step").values_list("step", "values")
    return {
        "state": job.state,
        "stage": job.stage,
        "step": job.step,
        "max_steps": job.max_steps,
        "eta_s": job_eta_seconds(job),
        "cancel_requested": job.cancel_requested_at is not None,
        "error": job.error,
        "metrics": [
            {"step": step, **{k: v for k, v in values.items() if k in CHARTED or k == "epoch"}} for step, values in rows
        ],  # fmt: skip
        "log_tail": job.log_tail[-4000:],
        "alarms": job.alarms,
        "live": job.state in TrainingJob.LIVE,
    }


@dataclass
class Stage:
    """One step of the loop on the getting-started page: what it has so far and what to do there."""

    name: str
    count: str  # the figure shown, e.g. "315 pairs"
    detail: str
    url: str | None  # None: not for this user (training is for admins)
    action: str
    done: bool


def pipeline_stages(project: Project, user) -> list[Stage]:
    """The loop, import to evaluation, with live counts for the project, in order. A stage is done when it has
    what the next one needs; the first stage not done is where the lead should go next."""
    slug = project.slug
    complete = Count("pk", filter=Q(label_count__gte=project.overlap_k))
    pairs = Pair.objects.filter(project=project).aggregate(n=Count("pk"), labels=Sum("label_count"), complete=complete)
    labels = pairs["labels"] or 0
    people = Label.objects.filter(project=project, annotator__isnull=False).values("annotator").distinct().count()
    paused = Membership.objects.filter(project=project, paused_at__isnull=False).count()
    judges = JudgeConfig.objects.filter(Q(project=project) | Q(project__isnull=True)).count()
    runs = JudgeRun.objects.filter(project=project).count()
    verdicts = Verdict.objects.filter(pair__project=project).count()
    recipes = CurationRecipe.objects.filter(project=project).values("name").distinct().count()
    exports = DatasetExport.objects.filter(project=project, state=DatasetExport.State.SUCCEEDED)
    jobs = TrainingJob.objects.filter(project=project)
    job_count = jobs.count()
    evaluated = jobs.filter(state__in=TrainingJob.HAS_MODEL).exclude(evaluation={}).order_by("-finished_at").first()
    admin = user.is_staff
    last_export = exports.order_by("-created_at").first()
    return [
        Stage("Import", f"{pairs['n']:,} pairs", f"{ImportBatch.objects.filter(project=project).count()} imports",
              reverse("annotation:imports", args=[slug]), "Import pairs (JSONL, JSON, CSV or Parquet)", pairs["n"] > 0),
        Stage("Annotate", f"{labels:,} labels", f"{pairs['complete']:,} pairs at K={project.overlap_k}",
              reverse("annotation:annotate", args=[slug]), "Label pairs from the keyboard, or invite annotators",
              labels > 0),
        Stage("Quality", f"{people} annotators", f"{paused} paused" if paused else "agreement, bias, calibration",
              reverse("annotation:quality", args=[slug]), "Check agreement and each annotator's habits", people >= 2),
        Stage("Judges", f"{verdicts:,} verdicts", f"{judges} judges, {runs} runs",
              reverse("judging:judges", args=[slug]), "Run an LLM judge on a few pairs", verdicts > 0),
        Stage("Curation", f"{recipes} recipes", "funnel, margins, length balance",
              reverse("training:curation", args=[slug]), "Save a recipe that keeps the pairs you trust", recipes > 0),
        Stage("Export", f"{exports.count()} exports", "TRL-ready files with a datasheet",
              reverse("training:export_detail", args=[slug, last_export.public_id]) if last_export
              else reverse("training:curation", args=[slug]), "Export the recipe's rows", last_export is not None),
        Stage("Train", f"{job_count} jobs", "DPO, KTO, ORPO, SimPO" if admin else "admins launch jobs",
              (reverse("training:jobs") + (f"?export={last_export.public_id}&preset=smoke" if last_export else ""))
              if admin else None, "Launch a job on the export (the smoke preset takes minutes on a CPU)",
              job_count > 0),
        Stage("Evaluate", "tuned vs base" if evaluated else "no evaluation yet", "held-out preference accuracy",
              reverse("training:job_detail", args=[evaluated.public_id]) if evaluated and admin else None,
              "Compare the tuned model with its base on the held-out split", evaluated is not None),
    ]  # fmt: skip


def evaluations_of(job: TrainingJob):
    return Evaluation.objects.filter(job=job).select_related("judge", "baseline_job", "prompt_set").order_by("-pk")


def evaluation_progress(evaluation: Evaluation) -> dict:
    """Where an evaluation is: its state and each of its runs' counts."""

    def run(r, done_field):
        return None if r is None else {"state": r.state, "done": getattr(r, done_field), "planned": r.requests_planned}

    return {
        "state": evaluation.state, "stage": evaluation.stage, "error": evaluation.error,
        "tuned_run": run(evaluation.tuned_run, "candidates_done"),
        "baseline_run": run(evaluation.baseline_run, "candidates_done"),
        "judge_run": run(evaluation.judge_run, "verdicts_done"),
    }  # fmt: skip


def campaigns_visible_to(user):
    """Every campaign for admins; for anyone else those of the projects they lead."""
    campaigns = Campaign.objects.select_related("project")
    if user.is_staff:
        return campaigns
    led = Membership.objects.filter(user=user, role=Membership.Role.LEAD).values("project_id")
    return campaigns.filter(project_id__in=led)


def job_memory_plan(job) -> dict:
    """The runner's plan (made with the model's real config on the worker) once it ran, else the one made before."""
    plan = (job.hardware or {}).get("plan") or job.memory_plan or {}
    if (job.hardware or {}).get("plan"):
        plan = plan | {"checked_on": "worker"}
    return plan if plan.get("strategy") else {}
