"""A job's training run in the child process (``python -m training.runner <job-id>``, Django set up): resolve the
base model, train, and record the result on the job."""

from __future__ import annotations

import shutil
import sys
import traceback
from pathlib import Path

from django.conf import settings
from django.urls import reverse

from judging.checkpoints import resolve_base_model

from ..jobs.lifecycle import (
    job_alarm_record,
    job_cancel_requested,
    job_fail,
    job_finish,
    job_hardware_record,
    job_metrics_record,
    job_progress_update,
    job_trails_sweep,
)
from ..jobs.spec import JobSpec
from ..models import TrainingJob
from ..storage import export_root, job_dir
from .sinks import is_main_process
from .trl_run import ModelLoadError, train


class JobSink:
    """Progress to the job's rows (training.jobs.lifecycle); only the main process writes."""

    def __init__(self, job_id: int, *, prune_at: float = 0.0):
        self.job_id, self.main = job_id, is_main_process()
        self.prune_at, self.pruning_checked = prune_at, False

    def progress(self, step: int, max_steps: int, stage: str) -> None:
        if self.main:
            job_progress_update(self.job_id, step, max_steps, stage)

    def hardware(self, info: dict) -> None:
        if self.main:
            job_hardware_record(self.job_id, info)

    def metrics(self, step: int, values: dict) -> None:
        if self.main:
            job_metrics_record(self.job_id, step, values)

    def alarm(self, alarm: dict) -> None:
        if self.main:
            job_alarm_record(self.job_id, alarm)

    def cancel_requested(self) -> bool:
        return job_cancel_requested(self.job_id)

    def trailing(self, step: int, max_steps: int, values: dict):
        """At the sweep's checkpoint (once), whether this run trails its sweep's earlier runs (every process asks
        the database, so all stop together)."""
        if not self.prune_at or self.pruning_checked or "loss" not in values or step < self.prune_at * max_steps:
            return None
        self.pruning_checked = True
        return job_trails_sweep(self.job_id, step, values["loss"])


def explain(exc: BaseException, spec=None) -> str:
    """A one-paragraph error for the job page."""
    text = f"{type(exc).__name__}: {exc}".strip()
    if type(exc).__name__ == "OutOfMemoryError" or "out of memory" in text.lower():
        hint = ""
        if spec is not None:
            hint = (f" (max_length {spec.max_length}, micro-batch {spec.micro_batch_size or 'auto'}): lower "
                    "micro_batch_size or max_length, or set gradient_checkpointing to on")  # fmt: skip
        return f"Out of GPU memory{hint}. {text.splitlines()[0][:500]}"
    if type(exc).__name__ == "ModelLoadError":
        return str(exc)[:4000]
    return text[:4000]


def _zip(folder: Path) -> Path:
    return Path(shutil.make_archive(str(folder), "zip", root_dir=folder))


def run_job(job_id: int) -> int:
    """Run a claimed (running) job; Django must be set up."""
    job = TrainingJob.objects.select_related("export", "export__recipe", "project", "sweep").get(pk=job_id)
    if job.state != TrainingJob.State.RUNNING:
        print(f"job {job_id} is {job.state}, not running: nothing to do", file=sys.stderr)
        return 0
    spec = JobSpec.from_dict(job.spec)
    sink = JobSink(job.pk, prune_at=job.sweep.prune_at if job.sweep_id else 0.0)
    export = job.export
    out_dir = job_dir(job)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        sink.progress(0, 0, "resolving the base model")
        try:
            model_path = resolve_base_model(spec.base_model, Path(settings.MODEL_CACHE))
        except Exception as exc:
            raise ModelLoadError(spec.base_model, exc) from exc

        context = {
            "name": job.name, "export": str(export.public_id), "project": job.project.slug,
            "recipe": f"{export.recipe.name} v{export.recipe.version}", "format": export.format,
            "content_hash": export.content_hash, "rows_train": export.rows_train, "rows_test": export.rows_test,
            "datasheet_url": reverse("training:export_detail", args=[job.project.slug, export.public_id]),
        }  # fmt: skip
        result = train(spec, export_root() / export.files["hf"]["path"], model_path, out_dir, sink, context=context)
    except Exception as exc:  # any failure ends the job with its message
        traceback.print_exc()
        if is_main_process():
            job_fail(job.pk, explain(exc, spec))
        return 1
    if not is_main_process():
        return 0
    archive = _zip(result["weights_dir"])
    root = Path(settings.TRAINING_ROOT)
    artifacts = {
        archive.name: {"path": str(archive.relative_to(root)), "bytes": archive.stat().st_size},
        "README.md": {"path": str((result["weights_dir"] / "README.md").relative_to(root)),
                      "bytes": (result["weights_dir"] / "README.md").stat().st_size},
    }  # fmt: skip
    job_finish(job.pk, result["state"], summary=result["summary"], evaluation=result["evaluation"],
               model_card=result["model_card"], artifacts=artifacts, hardware=result["hardware"],
               alarms=result["alarms"], stop_reason=result["stop_reason"])  # fmt: skip
    return 0
