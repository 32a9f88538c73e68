"""Celery tasks on the ``judge`` queue: ids in, a call to the engine, nothing else. Both are safe to run twice."""

from __future__ import annotations

import logging
import random

from celery import shared_task

from .engine import judge_chunk
from .lifecycle import run_begin, run_finish_if_done, run_stop
from .models import JudgeRun

logger = logging.getLogger(__name__)

MAX_TRANSIENT_RETRIES = 12
BACKOFF_BASE_SECONDS = 5.0
BACKOFF_MAX_SECONDS = 600.0


def _live_run(run_id: int) -> JudgeRun | None:
    run = JudgeRun.objects.select_related("judge", "prompt_version", "project").filter(pk=run_id).first()
    return run if run is not None and run.state in JudgeRun.LIVE else None


@shared_task(acks_late=True, reject_on_worker_lost=True, soft_time_limit=300, time_limit=360)
def judge_run_dispatch_task(run_id: int) -> None:
    """Split a run into chunk tasks (pair ids in each message)."""
    run = _live_run(run_id)
    if run is None:
        return
    for pair_ids in run_begin(run):
        judge_run_chunk_task.delay(run.pk, pair_ids)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, soft_time_limit=1500, time_limit=1800,
             max_retries=MAX_TRANSIENT_RETRIES)  # fmt: skip
def judge_run_chunk_task(self, run_id: int, pair_ids: list[int]) -> None:
    run = _live_run(run_id)
    if run is None:
        return
    outcome = judge_chunk(run, pair_ids)
    if outcome.retry_in is not None:
        if self.request.retries >= MAX_TRANSIENT_RETRIES:
            run_stop(run, JudgeRun.State.FAILED, f"Gave up after {self.request.retries} retries: {outcome.reason}")
            return
        # Exponential backoff with jitter, or the server's Retry-After when it asked for longer.
        backoff = min(BACKOFF_BASE_SECONDS * 2**self.request.retries, BACKOFF_MAX_SECONDS) * random.uniform(0.75, 1)
        countdown = max(outcome.retry_in, backoff)
        logger.warning("judge run %s: %s; chunk retried in %.0f s", run.pk, outcome.reason, countdown)
        JudgeRun.objects.filter(pk=run.pk).update(error=f"Retrying in {countdown:.0f} s: {outcome.reason}"[:2000])
        raise self.retry(countdown=countdown)
    run_finish_if_done(run)
