"""Training jobs: queueing one (admins only), cancelling it and handing its model to generation (a policy) or to
judging (a reward model, as a scorer), whichever door the admin came in by (dashboard, API, command)."""

from __future__ import annotations

import os

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction

from judging.checkpoints import describe_base_model
from judging.models import JudgeConfig
from judging.services import reward_model_create

from ..evaluations.flow import job_generator
from ..export.hf_folder import split_pair_ids
from ..jobs.lifecycle import job_cancel_request
from ..jobs.memory import DoesNotFit, plan_job, read_shape
from ..jobs.spec import spec_from_preset
from ..models import DatasetExport, TrainingJob
from ..storage import export_root, job_dir
from ..tasks import job_run_task

State = TrainingJob.State
__all__ = ["job_cancel", "job_create", "job_generator", "job_reward_model"]


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
    if export.format == DatasetExport.Format.KTO and not spec.is_policy:
        raise ValidationError({"export": "A reward model learns from pairs (a chosen and a rejected response to "
                                         "one prompt): choose a DPO-format export; a KTO export has unpaired "
                                         "rows."})  # fmt: skip
    if export.format != spec.export_format:
        raise ValidationError({"export": f"{spec.method.upper()} trains on a {spec.export_format.upper()} export; "
                                         f"this one is {export.format.upper()}."})  # fmt: skip
    if export.rows_train == 0:
        raise ValidationError({"export": "This export has no training rows."})
    plan = queue_plan(spec)
    with transaction.atomic():
        job = TrainingJob.objects.create(project=export.project, export=export, spec=spec.as_dict(), name=name.strip(),
                                         created_by=user, sweep=sweep, sweep_point=sweep_point or {},
                                         memory_plan=plan)  # fmt: skip
        job_run_task.delay_on_commit(job.pk)
    return job


def queue_plan(spec) -> dict:
    """The memory check before queueing (training.jobs.memory): against the GPU size the workers declare
    (TRAINING_GPU_MEMORY_GIB, TRAINING_GPUS, TRAINING_NUM_MACHINES) when the model's config can be read here; the
    worker checks again with its real GPUs either way."""
    have = settings.TRAINING_GPU_MEMORY_GIB or None
    try:
        plan = plan_job(spec, read_shape(spec.base_model), gpus=settings.TRAINING_GPUS * settings.TRAINING_NUM_MACHINES,
                        have_gib=have)  # fmt: skip
    except DoesNotFit as exc:
        raise ValidationError({"settings": str(exc)}) from None
    return plan | {"checked_on": "queueing"}


def job_cancel(*, job: TrainingJob) -> TrainingJob:
    """Cancel: a queued job ends now; a running one is asked to stop at its next step (it keeps what it saved)."""
    job_cancel_request(job.pk)
    job.refresh_from_db()
    return job


def job_reward_model(*, job: TrainingJob, user) -> JudgeConfig:
    """A succeeded reward-model job as a scorer of its project (judging's reward model: the base model with the
    job's adapter, or the job's full weights), remembering the export's training pairs so its audit leaves them out.
    Admins only; asking twice (a double click) returns the same scorer."""
    if user is not None and not user.is_staff:
        raise PermissionDenied("Only admins turn a training job into a scorer.")
    if job.spec.get("method") != "reward":
        raise ValidationError("Only a reward-model job's model scores responses: this job trained a policy (it can "
                              "generate candidates instead).")  # fmt: skip
    if job.state != State.SUCCEEDED:  # stopped: a non-finite loss, or a sweep run cut for trailing the others
        raise ValidationError("Only a succeeded reward-model job becomes a scorer.")
    lora = job.spec.get("lora", True)
    folder = (job_dir(job) / ("adapter" if lora else "model")).resolve()
    if not folder.is_dir():
        raise ValidationError(f"The job's {'adapter' if lora else 'model'} folder is missing ({folder}).")
    name = f"job {str(job.public_id)[:8]} reward model"
    export = job.export
    existing = JudgeConfig.objects.filter(project=export.project, name=name).first()
    if existing is not None:
        return existing
    try:
        trained_on = split_pair_ids(export_root() / export.files["hf"]["path"], "train")
        problem = "" if len(trained_on) == export.rows_train else "its training split is missing or changed"
    except (KeyError, OSError) as exc:
        trained_on, problem = [], str(exc)
    if problem:
        raise ValidationError(f"The export's files cannot be read ({problem}): which pairs the model was trained on, "
                              "and so which to leave out of its audit, is unknown.")  # fmt: skip
    values = {"model": job.spec["base_model"], "adapter": str(folder)} if lora else {"model": str(folder)}
    try:
        return reward_model_create(project=export.project, user=user, name=name, trained_on=trained_on, **values)
    except IntegrityError:  # the other click of a double click created it first
        return JudgeConfig.objects.get(project=export.project, name=name)
