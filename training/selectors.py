"""Reads for the curation, export and training job pages: latest recipes, recent exports and jobs, the exports a job
can start from, and a job's live progress."""

from __future__ import annotations

from django.utils import timezone

from annotation.models import Project

from .models import CurationRecipe, DatasetExport, TrainingJob, TrainingMetric


def recipes_latest(project: Project) -> list[CurationRecipe]:
    """The latest version of each recipe."""
    latest = {}
    for recipe in CurationRecipe.objects.filter(project=project).order_by("name", "-version"):
        latest.setdefault(recipe.name, recipe)
    return list(latest.values())


def exports_recent(project: Project, limit: int = 100):
    """The project's latest exports, newest first."""
    return DatasetExport.objects.filter(project=project).select_related("recipe", "created_by")[:limit]


# The series the job page charts, in TRL's names (KTO logs kl; ORPO/SimPO log their own rewards).
CHARTED = ("loss", "rewards/margins", "rewards/accuracies", "rewards/chosen", "rewards/rejected", "logps/chosen",
           "logps/rejected", "kl", "learning_rate", "tokens_per_s", "gpu_memory_gib", "grad_norm")  # fmt: skip


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
        "live": job.state in TrainingJob.LIVE,
    }
