"""Celery tasks for exports and training jobs: an id in, one call, done. Each is safe to run twice (a finished export
is left alone; a job is claimed by one conditional UPDATE)."""

from __future__ import annotations

import logging

from celery import shared_task

from .evaluations.flow import evaluation_advance, evaluation_after_job, evaluations_stuck
from .export.build import export_build
from .export.hub import hub_push_run
from .jobs.lifecycle import jobs_reap
from .jobs.supervisor import job_join, job_supervise
from .models import DatasetExport
from .signals import job_ended
from .sweeps.flow import sweep_after_job, sweeps_settle

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, reject_on_worker_lost=True, soft_time_limit=55 * 60, time_limit=60 * 60)
def export_build_task(export_id: int) -> None:
    export = DatasetExport.objects.select_related("project", "recipe", "created_by").filter(pk=export_id).first()
    if export is not None:
        export_build(export)


@shared_task(acks_late=True, reject_on_worker_lost=True, soft_time_limit=55 * 60, time_limit=60 * 60)
def hub_push_task(push_id: int) -> None:
    """An export's files to a Hub dataset repo (training.export.hub): claimed once, ends succeeded or failed."""
    hub_push_run(push_id)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def job_run_task(job_id: int) -> None:
    """On the ``gpu`` queue: the job's child process, watched until it ends (training.jobs.supervisor); then its
    sweep's bookkeeping (budget, end), and the job's automatic evaluation against its base model when it has one."""
    job_supervise(job_id)
    sweep_after_job(job_id)
    evaluation_after_job(job_id)
    job_ended.send(sender=None, job_id=job_id)


@shared_task
def job_join_task(job_id: int, rank: int, plan: dict) -> None:
    """On node ``rank``'s own queue (gpu-node<rank>): its part of a multi-node job (training.jobs.supervisor)."""
    job_join(job_id, rank, plan)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def evaluation_advance_task(evaluation_id: int) -> None:
    """An evaluation moves on after one of its runs ended (training.receivers)."""
    evaluation_advance(evaluation_id)


@shared_task
def evaluations_advance_task() -> int:
    """Beat, every minute: live evaluations whose runs have all ended move on (in case a run_ended task was lost)."""
    stuck = evaluations_stuck()
    for evaluation_id in stuck:
        try:
            evaluation_advance(evaluation_id)
        except Exception:  # noqa: BLE001 - one broken evaluation must not hold up the others
            logger.exception("evaluation %s could not move on", evaluation_id)
    return len(stuck)


@shared_task
def jobs_reap_task() -> int:
    """Beat, every minute: running jobs whose worker died are marked failed, and sweeps with no live run end."""
    reaped = jobs_reap()
    sweeps_settle()
    return reaped
