"""Celery tasks of judge runs: ids in, a call to the engine, nothing else; safe to run twice. LLM judges' requests
go on the ``judge`` queue; a reward model's run scores on the ``gpu`` queue (torch loaded there only)."""

from __future__ import annotations

import logging

from celery import shared_task

from .engine import judge_chunk
from .lifecycle import MAX_TRANSIENT_RETRIES, retry_delay, run_begin, run_finish_if_done
from .models import JudgeRun
from .rewards.engine import reward_run

logger = logging.getLogger(__name__)


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
        countdown = retry_delay(run, self.request.retries, outcome.retry_in, outcome.reason)
        if countdown is None:
            return
        logger.warning("judge run %s: %s; chunk retried in %.0f s", run.pk, outcome.reason, countdown)
        raise self.retry(countdown=countdown)
    run_finish_if_done(run)


@shared_task(acks_late=True, reject_on_worker_lost=True, soft_time_limit=6 * 3600, time_limit=6 * 3600 + 60)
def reward_run_task(run_id: int) -> None:
    """A reward model scores every pair of the run that has no verdict yet, in batches."""
    run = _live_run(run_id)
    if run is None:
        return
    from .rewards.scorer import scorer_for  # torch: never imported by the web process

    reward_run(run, lambda: scorer_for(run.judge.model, run.judge.adapter))
