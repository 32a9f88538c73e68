"""Celery tasks of generation runs: ids in, a call to the engine, nothing else; safe to run twice. Endpoint runs go
on the ``judge`` queue (requests to a server, like judge runs); local checkpoints on the ``gpu`` queue."""

from __future__ import annotations

import logging

from celery import shared_task

from judging.lifecycle import MAX_TRANSIENT_RETRIES, retry_delay, run_stop

from .engine import run_chunk
from .lifecycle import run_begin, run_counts, run_finish_if_done
from .models import GenerationRun
from .rewards import rates_with_reward_model, reward_rate

logger = logging.getLogger(__name__)


def _live_run(run_id: int) -> GenerationRun | None:
    run = GenerationRun.objects.select_related("generator", "rater", "project", "prompt_set").filter(pk=run_id).first()
    return run if run is not None and run.state in GenerationRun.LIVE else None


@shared_task(acks_late=True, reject_on_worker_lost=True, soft_time_limit=300, time_limit=360)
def generation_run_dispatch_task(run_id: int) -> None:
    """Split an endpoint generator's run into chunk tasks (prompt ids in each message)."""
    run = _live_run(run_id)
    if run is None:
        return
    for prompt_ids in run_begin(run):
        generation_chunk_task.delay(run.pk, prompt_ids)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, soft_time_limit=1500, time_limit=1800,
             max_retries=MAX_TRANSIENT_RETRIES)  # fmt: skip
def generation_chunk_task(self, run_id: int, prompt_ids: list[int]) -> None:
    run = _live_run(run_id)
    if run is None:
        return
    outcome = run_chunk(run, prompt_ids)
    if outcome.retry_in is not None:
        countdown = retry_delay(run, self.request.retries, outcome.retry_in, outcome.reason)
        if countdown is None:
            return
        logger.warning("generation run %s: %s; chunk retried in %.0f s", run.pk, outcome.reason, countdown)
        raise self.retry(countdown=countdown)
    if rates_with_reward_model(run):
        if run_counts(run)[0] >= run.requests_planned:  # every candidate is in: the reward model rates them
            generation_reward_task.delay(run.pk)
        return
    run_finish_if_done(run)


@shared_task(acks_late=True, reject_on_worker_lost=True, soft_time_limit=6 * 3600, time_limit=6 * 3600 + 60)
def generation_local_task(run_id: int) -> None:
    """A local checkpoint samples every missing slot of the run in batches (torch loaded here, on the gpu queue)."""
    run = _live_run(run_id)
    if run is None:
        return
    from .local import local_run  # torch: never imported by the web process

    if not local_run(run):
        return
    if rates_with_reward_model(run):
        _reward_rate(run)
    elif run.rater_id is not None:  # ratings are requests to the judge's server: on the judge queue, in chunks
        for prompt_ids in run_begin(run):
            generation_chunk_task.delay(run.pk, prompt_ids)
    else:
        run_finish_if_done(run)


def _reward_rate(run: GenerationRun) -> None:
    from judging.rewards.scorer import scorer_for  # torch: never imported by the web process

    try:
        score_fn, identity = scorer_for(run.rater.model, run.rater.adapter)
    except Exception as exc:  # noqa: BLE001 - any load failure ends the run with its reason
        run_stop(run, GenerationRun.State.FAILED, f"Could not load the reward model {run.rater.model}: "
                                                  f"{type(exc).__name__}: {str(exc)[:1000]}")  # fmt: skip
        return
    try:
        reward_rate(run, score_fn, identity)
    except Exception as exc:  # a chat template refusing a prompt, out of memory, the time limit: the run says so
        run_stop(run, GenerationRun.State.FAILED, f"Rating failed: {type(exc).__name__}: {str(exc)[:1000]}")
        raise
    run_finish_if_done(run)


@shared_task(acks_late=True, reject_on_worker_lost=True, soft_time_limit=6 * 3600, time_limit=6 * 3600 + 60)
def generation_reward_task(run_id: int) -> None:
    """A reward-model rater scores the candidates of an endpoint generator's run once they are all in."""
    run = _live_run(run_id)
    if run is not None:
        _reward_rate(run)
