"""Training jobs: queueing one (admins only), cancelling it and handing its model to generation, whichever door the
admin came in by (dashboard, API, command)."""

from __future__ import annotations

import os

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from generation.checkpoints import describe_base_model

from ..evaluations.flow import job_generator
from ..jobs.lifecycle import job_cancel_request
from ..jobs.spec import spec_from_preset
from ..models import DatasetExport, TrainingJob
from ..tasks import job_run_task

State = TrainingJob.State
__all__ = ["job_cancel", "job_create", "job_generator"]


def job_create(*, export: DatasetExport, user, settings_: dict | None = None, preset: str = "dpo-lora",
               name: str = "", sweep=None, sweep_point: dict | None = None) -> TrainingJob:  # fmt: skip
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
    adapter = spec.init_adapter.strip()
    if adapter and not os.path.isfile(os.path.join(os.path.expanduser(adapter), "adapter_config.json")):
        raise ValidationError({"init_adapter": f"{adapter}: no LoRA adapter there (a folder with "
                                               "adapter_config.json)."})  # fmt: skip
    if export.state != DatasetExport.State.SUCCEEDED or "hf" not in export.files:
        raise ValidationError({"export": "This export is not ready."})
    if export.format != spec.export_format:
        raise ValidationError({"export": f"{spec.method.upper()} trains on a {spec.export_format.upper()} export; "
                                         f"this one is {export.format.upper()}."})  # fmt: skip
    if export.rows_train == 0:
        raise ValidationError({"export": "This export has no training rows."})
    with transaction.atomic():
        job = TrainingJob.objects.create(project=export.project, export=export, spec=spec.as_dict(), name=name.strip(),
                                         created_by=user, sweep=sweep, sweep_point=sweep_point or {})  # fmt: skip
        job_run_task.delay_on_commit(job.pk)
    return job


def job_cancel(*, job: TrainingJob) -> TrainingJob:
    """Cancel: a queued job ends now; a running one is asked to stop at its next step (it keeps what it saved)."""
    job_cancel_request(job.pk)
    job.refresh_from_db()
    return job
