"""Celery tasks for exports and training jobs: an id in, one call, done. Each is safe to run twice (a finished export
is left alone; a job is claimed by one conditional UPDATE)."""

from __future__ import annotations

from celery import shared_task

from .export.build import export_build
from .jobs.lifecycle import jobs_reap
from .jobs.supervisor import job_supervise
from .models import DatasetExport


@shared_task(acks_late=True, reject_on_worker_lost=True, soft_time_limit=55 * 60, time_limit=60 * 60)
def export_build_task(export_id: int) -> None:
    export = DatasetExport.objects.select_related("project", "recipe", "created_by").filter(pk=export_id).first()
    if export is not None:
        export_build(export)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def job_run_task(job_id: int) -> None:
    """On the ``gpu`` queue: the job's child process, watched until it ends (training.jobs.supervisor)."""
    job_supervise(job_id)


@shared_task
def jobs_reap_task() -> int:
    """Beat, every minute: running jobs whose worker died are marked failed."""
    return jobs_reap()
