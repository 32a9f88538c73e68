"""A sweep's life after it was queued (training.services.sweeps creates it with all its runs): each run that ends
checks the GPU-time budget (queued runs are cancelled once it is spent) and finishes the sweep when none is left;
cancel ends every run; promote marks one run's model.

The runs are ordinary jobs on the ``gpu`` queue, so a worker takes them one at a time in the order they were queued.
Every state change is a conditional UPDATE, so two workers (or a double click) cannot finish or cancel twice.
"""

from __future__ import annotations

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.utils import timezone

from ..jobs.lifecycle import job_cancel_request
from ..models import Sweep, TrainingJob

State = Sweep.State


def gpu_seconds(sweep: Sweep) -> float:
    """Wall time its runs have held a worker (running ones up to now)."""
    now, total = timezone.now(), timedelta()
    for started, finished in sweep.jobs.filter(started_at__isnull=False).values_list("started_at", "finished_at"):
        total += (finished or now) - started
    return total.total_seconds()


def sweep_after_job(job_id: int) -> None:
    """A run ended: cancel what is still queued once the budget is spent, and finish the sweep when no run is live."""
    sweep_id = TrainingJob.objects.filter(pk=job_id).values_list("sweep_id", flat=True).first()
    sweep = Sweep.objects.filter(pk=sweep_id, state=State.RUNNING).first() if sweep_id else None
    if sweep is None:
        return
    if sweep.budget_minutes is not None and gpu_seconds(sweep) >= sweep.budget_minutes * 60:
        why = f"cancelled: the sweep's GPU-time budget ({sweep.budget_minutes:g} min) is spent"
        for queued in sweep.jobs.filter(state=TrainingJob.State.QUEUED).values_list("pk", flat=True):
            job_cancel_request(queued, why=why)
        Sweep.objects.filter(pk=sweep.pk).update(stage=f"budget of {sweep.budget_minutes:g} GPU minutes spent")
    sweep_finish_if_done(sweep.pk)


def sweep_finish_if_done(sweep_id: int) -> bool:
    if TrainingJob.objects.filter(sweep_id=sweep_id, state__in=TrainingJob.LIVE).exists():
        return False
    return bool(Sweep.objects.filter(pk=sweep_id, state=State.RUNNING).update(
        state=State.FINISHED, finished_at=timezone.now()
    ))  # fmt: skip


def sweeps_settle() -> int:
    """Running sweeps none of whose runs is live end (in case the task after a run's end was lost)."""
    running = Sweep.objects.filter(state=State.RUNNING).values_list("pk", flat=True)
    return sum(sweep_finish_if_done(pk) for pk in running)


def sweep_cancel(*, sweep: Sweep) -> Sweep:
    """Queued runs end now, the running one stops at its next step (keeping its adapter); finished runs stay."""
    Sweep.objects.filter(pk=sweep.pk, state=State.RUNNING).update(
        state=State.CANCELLED, finished_at=timezone.now(), stage="cancelled"
    )
    for job_id in sweep.jobs.filter(state__in=TrainingJob.LIVE).values_list("pk", flat=True):
        job_cancel_request(job_id, why="cancelled with its sweep")
    sweep.refresh_from_db()
    return sweep


def sweep_promote(*, sweep: Sweep, job: TrainingJob) -> Sweep:
    """Mark one run's model as the sweep's pick (again on a double click: the same run, the first time kept)."""
    if job.sweep_id != sweep.pk:
        raise ValidationError({"job": "That run is not part of this sweep."})
    if job.state not in TrainingJob.HAS_MODEL:
        raise ValidationError({"job": "Only a run that finished (or stopped early) with a model can be promoted."})
    Sweep.objects.filter(pk=sweep.pk).exclude(promoted_job=job).update(promoted_job=job, promoted_at=timezone.now())
    sweep.refresh_from_db()
    return sweep


def sweeps_counted_runs(sweep: Sweep) -> dict:
    """How many runs are in each state."""
    counts = {s: 0 for s in TrainingJob.State.values}
    for state in sweep.jobs.values_list("state", flat=True):
        counts[state] += 1
    return counts
