"""Training jobs: every write, whichever door it came in by (dashboard, API, command, worker, runner).

States: queued → running → succeeded | failed | cancelled. A worker claims a queued job (one conditional UPDATE, so a
redelivered task cannot start it twice) and writes a heartbeat while its child process trains; a running job whose
heartbeat is older than TRAINING_HEARTBEAT_TIMEOUT lost its worker and is marked failed by ``jobs_reap`` (beat) or
by the redelivered task itself. Cancelling a queued job ends it at once; a running one stops at its next step and
keeps what was saved.
"""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from .checkpoints import describe_base_model
from .models import DatasetExport, TrainingJob, TrainingMetric
from .spec import spec_from_preset

State = TrainingJob.State


def job_dir(job: TrainingJob) -> Path:
    return Path(settings.TRAINING_ROOT) / str(job.public_id)


def job_create(*, export: DatasetExport, user, settings_: dict | None = None, preset: str = "dpo-lora",
               name: str = "") -> TrainingJob:  # fmt: skip
    """Validate and queue a job (admins only). The base model name is checked here (a local path must exist, a hub
    id must be well formed), so a typo fails at once instead of on a GPU worker."""
    if user is not None and not user.is_staff:
        raise PermissionDenied("Only admins launch training jobs.")
    try:
        spec = spec_from_preset(preset, settings_ or {})
    except (TypeError, ValueError) as exc:
        field, _, message = str(exc).partition(": ")
        raise ValidationError({field if message else "settings": message or str(exc)}) from None
    try:
        describe_base_model(spec.base_model)
    except ValueError as exc:
        raise ValidationError({"base_model": str(exc)}) from None
    if export.state != DatasetExport.State.SUCCEEDED or "hf" not in export.files:
        raise ValidationError({"export": "This export is not ready."})
    if export.format != spec.export_format:
        raise ValidationError({"export": f"{spec.method.upper()} trains on a {spec.export_format.upper()} export; "
                                         f"this one is {export.format.upper()}."})  # fmt: skip
    if export.rows_train == 0:
        raise ValidationError({"export": "This export has no training rows."})
    with transaction.atomic():
        job = TrainingJob.objects.create(project=export.project, export=export, spec=spec.as_dict(), name=name.strip(),
                                         created_by=user)  # fmt: skip
        from .tasks import training_job_run

        training_job_run.delay_on_commit(job.pk)
    return job


def job_cancel(job: TrainingJob) -> TrainingJob:
    now = timezone.now()
    if not TrainingJob.objects.filter(pk=job.pk, state=State.QUEUED).update(
        state=State.CANCELLED, cancel_requested_at=now, finished_at=now, stage="cancelled before it started"
    ):
        TrainingJob.objects.filter(pk=job.pk, state=State.RUNNING, cancel_requested_at__isnull=True).update(
            cancel_requested_at=now, stage="cancelling at the next step"
        )
    job.refresh_from_db()
    return job


def job_claim(job_id: int, worker: str) -> TrainingJob | None:
    """The job, now running on this worker, or None when it is not queued (already run, cancelled, or running on
    another worker). A job left running by a worker that died (stale heartbeat) is marked failed here."""
    now = timezone.now()
    if TrainingJob.objects.filter(pk=job_id, state=State.QUEUED).update(
        state=State.RUNNING, started_at=now, heartbeat_at=now, worker=worker[:200], stage="starting"
    ):
        return TrainingJob.objects.select_related("export", "project").get(pk=job_id)
    jobs_reap(job_ids=[job_id])
    return None


def job_heartbeat(job_id: int, *, log_tail: str | None = None) -> bool:
    """Record that the worker is alive; False once the job is no longer running."""
    fields = {"heartbeat_at": timezone.now()}
    if log_tail is not None:
        fields["log_tail"] = log_tail
    return bool(TrainingJob.objects.filter(pk=job_id, state=State.RUNNING).update(**fields))


def job_progress(job_id: int, step: int, max_steps: int, stage: str) -> None:
    TrainingJob.objects.filter(pk=job_id, state=State.RUNNING).update(
        step=step, max_steps=max(max_steps, 0), stage=stage[:200], heartbeat_at=timezone.now()
    )


def job_metrics(job_id: int, step: int, values: dict) -> None:
    """One logging step (written again, it replaces the row: a step is never stored twice)."""
    TrainingMetric.objects.update_or_create(job_id=job_id, step=step, defaults={"values": values})


def job_cancel_requested(job_id: int) -> bool:
    return TrainingJob.objects.filter(pk=job_id, cancel_requested_at__isnull=False).exists()


def job_finish(job_id: int, state: str, **fields) -> bool:
    """Move a running job to its final state; False if it had already ended (a second finish changes nothing)."""
    if state not in (State.SUCCEEDED, State.CANCELLED, State.FAILED):
        raise ValueError(f"not a final state: {state}")
    stage = {State.SUCCEEDED: "done", State.CANCELLED: "cancelled", State.FAILED: "failed"}[state]
    return bool(TrainingJob.objects.filter(pk=job_id, state=State.RUNNING).update(
        state=state, finished_at=timezone.now(), stage=stage, **fields
    ))  # fmt: skip


def job_fail(job_id: int, error: str, **fields) -> bool:
    return job_finish(job_id, State.FAILED, error=error[:4000], **fields)


def jobs_reap(*, job_ids: list[int] | None = None) -> int:
    """Mark failed every running job whose worker stopped writing heartbeats."""
    stale = timezone.now() - timedelta(seconds=settings.TRAINING_HEARTBEAT_TIMEOUT)
    jobs = TrainingJob.objects.filter(Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True), state=State.RUNNING)
    if job_ids is not None:
        jobs = jobs.filter(pk__in=job_ids)
    return jobs.update(
        state=State.FAILED, finished_at=timezone.now(), stage="failed",
        error=f"The worker running this job stopped (no heartbeat for {settings.TRAINING_HEARTBEAT_TIMEOUT} s). "
        "Launch it again; nothing it saved is lost.",
    )  # fmt: skip


def job_delete_files(job: TrainingJob) -> None:
    shutil.rmtree(job_dir(job), ignore_errors=True)
