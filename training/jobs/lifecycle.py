"""A training job's life on the worker side: every state change after it was queued (claim, heartbeat, progress,
metrics, finish, fail, reap), made by the worker that runs it (training.jobs.supervisor), the child process
(training.runner) and beat.

States: queued → running → succeeded | stopped (early, by a health alarm) | failed | cancelled. A worker claims a queued
job (one conditional UPDATE, so a redelivered task cannot start it twice) and writes a heartbeat while its child process
trains; a running job whose heartbeat is older than TRAINING_HEARTBEAT_TIMEOUT lost its worker and is marked failed by
``jobs_reap`` (beat) or by the redelivered task itself. Cancelling a queued job ends it at once; a running one stops at
its next step and keeps what was saved (training.services.jobs).
"""

from __future__ import annotations

from datetime import timedelta
from statistics import median

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ..models import TrainingJob, TrainingMetric
from .health import Alarm

State = TrainingJob.State


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


def job_progress_update(job_id: int, step: int, max_steps: int, stage: str) -> None:
    """Record how far the run is (the runner calls this at every logging step)."""
    TrainingJob.objects.filter(pk=job_id, state=State.RUNNING).update(
        step=step, max_steps=max(max_steps, 0), stage=stage[:200], heartbeat_at=timezone.now()
    )


def job_hardware_record(job_id: int, info: dict) -> None:
    """The device, precision and batch sizes the run chose."""
    TrainingJob.objects.filter(pk=job_id).update(hardware=info)


def job_metrics_record(job_id: int, step: int, values: dict) -> None:
    """One logging step (written again, it replaces the row: a step is never stored twice)."""
    TrainingMetric.objects.update_or_create(job_id=job_id, step=step, defaults={"values": values})


def job_alarm_record(job_id: int, alarm: dict) -> None:
    """A health alarm that fired (training.jobs.health); each alarm fires once per run, so none is stored twice."""
    with transaction.atomic():
        job = TrainingJob.objects.select_for_update().only("alarms").get(pk=job_id)
        if all(a.get("alarm") != alarm.get("alarm") for a in job.alarms):
            TrainingJob.objects.filter(pk=job_id).update(alarms=[*job.alarms, alarm])


def job_cancel_request(job_id: int, *, why: str = "") -> None:
    """Cancel: a queued job ends now; a running one is asked to stop at its next step (it keeps what it saved)."""
    now = timezone.now()
    if not TrainingJob.objects.filter(pk=job_id, state=State.QUEUED).update(
        state=State.CANCELLED, cancel_requested_at=now, finished_at=now,
        stage=(why or "cancelled before it started")[:200],
    ):  # fmt: skip
        TrainingJob.objects.filter(pk=job_id, state=State.RUNNING, cancel_requested_at__isnull=True).update(
            cancel_requested_at=now, stage="cancelling at the next step"
        )


def job_trails_sweep(job_id: int, step: int, loss: float) -> Alarm | None:
    """The median stopping rule (Vizier's, the sequential form of successive halving): a sweep's run whose training
    loss at ``step`` is worse than the median of its sweep's earlier runs at the same step trails them; None while
    fewer than two earlier runs got that far."""
    sweep_id = TrainingJob.objects.filter(pk=job_id).values_list("sweep_id", flat=True).first()
    if sweep_id is None:
        return None
    earlier = TrainingMetric.objects.filter(job__sweep_id=sweep_id, job__pk__lt=job_id, step=step)
    losses = [v["loss"] for v in earlier.values_list("values", flat=True) if "loss" in v]
    if len(losses) < 2 or loss <= median(losses):
        return None
    return Alarm("trailing", "Trails the sweep's earlier runs", step, round(loss, 6),
                 f"loss > the median {median(losses):.4g} of {len(losses)} earlier runs at step {step}",
                 "Stopped to free the GPU for the sweep's other runs (early termination); its adapter of this step "
                 "is kept.", "stop")  # fmt: skip


def job_cancel_requested(job_id: int) -> bool:
    return TrainingJob.objects.filter(pk=job_id, cancel_requested_at__isnull=False).exists()


def job_finish(job_id: int, state: str, **fields) -> bool:
    """Move a running job to its final state; False if it had already ended (a second finish changes nothing)."""
    if state not in (State.SUCCEEDED, State.STOPPED, State.CANCELLED, State.FAILED):
        raise ValueError(f"not a final state: {state}")
    stage = {State.SUCCEEDED: "done", State.STOPPED: "stopped early", State.CANCELLED: "cancelled",
             State.FAILED: "failed"}[state]  # fmt: skip
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


def job_requeue(job_id: int) -> bool:
    """A failed job (its worker died, say) back in the queue as the same job, its half-run's steps and alarms
    forgotten; False when it is not failed (a second resume changes nothing). The caller queues its task."""
    with transaction.atomic():
        if not TrainingJob.objects.filter(pk=job_id, state=State.FAILED).update(
            state=State.QUEUED, error="", stage="queued again", step=0, started_at=None, finished_at=None,
            heartbeat_at=None, worker="", alarms=[], stop_reason="", cancel_requested_at=None,
        ):  # fmt: skip
            return False
        TrainingMetric.objects.filter(job_id=job_id).delete()
    return True
