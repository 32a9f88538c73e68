"""Training jobs: queueing one (admins only), cancelling it and handing its model to generation, whichever door the
admin came in by (dashboard, API, command)."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from generation.checkpoints import describe_base_model
from generation.models import Generator
from generation.services import generator_create

from ..jobs.spec import spec_from_preset
from ..models import DatasetExport, TrainingJob
from ..storage import job_dir
from ..tasks import job_run_task

State = TrainingJob.State


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
        job_run_task.delay_on_commit(job.pk)
    return job


def job_cancel(*, job: TrainingJob) -> TrainingJob:
    """Cancel: a queued job ends now; a running one is asked to stop at its next step (it keeps what it saved)."""
    now = timezone.now()
    if not TrainingJob.objects.filter(pk=job.pk, state=State.QUEUED).update(
        state=State.CANCELLED, cancel_requested_at=now, finished_at=now, stage="cancelled before it started"
    ):
        TrainingJob.objects.filter(pk=job.pk, state=State.RUNNING, cancel_requested_at__isnull=True).update(
            cancel_requested_at=now, stage="cancelling at the next step"
        )
    job.refresh_from_db()
    return job


def job_generator(*, job: TrainingJob, user) -> Generator:
    """A local generator (generation app) for a finished job's model, so the tuned model writes candidates on the
    ``gpu`` queue: the base model with the job's LoRA adapter, or the job's full weights. Asking twice (a double
    click) returns the same generator."""
    if job.state != State.SUCCEEDED:
        raise ValidationError("Only a finished job's model can generate.")
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
