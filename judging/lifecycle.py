"""A judge run's state on the worker side: begun by the dispatch task, stopped by the engine (budget, fatal error),
finished once every planned (pair, order) has a verdict. Every change is a conditional UPDATE, so a task delivered
twice changes nothing the second time. The lead's own changes (pause, resume, cancel) are in judging/services.py."""

from __future__ import annotations

import random

from django.conf import settings
from django.utils import timezone

from .models import EndpointRun, JudgeRun, Verdict
from .signals import run_ended

MAX_TRANSIENT_RETRIES = 12
BACKOFF_BASE_SECONDS = 5.0
BACKOFF_MAX_SECONDS = 600.0


def run_stop(run: EndpointRun, state: str, reason: str = "") -> None:
    """End a live run (a judge run or a generation run) in ``state`` (conditional: a run already ended keeps its
    state)."""
    if (
        type(run)
        .objects.filter(pk=run.pk, state__in=run.LIVE)
        .update(state=state, error=reason[:2000], finished_at=timezone.now())
    ):
        run_ended.send(sender=type(run), run=run)


def retry_delay(run: EndpointRun, retries: int, retry_in: float, reason: str) -> float | None:
    """Seconds until a chunk that met transient trouble runs again (exponential backoff with jitter, or the
    server's Retry-After when it asked for longer), noted on the run; None when it has been retried enough (the run
    then fails with the reason)."""
    if retries >= MAX_TRANSIENT_RETRIES:
        run_stop(run, run.State.FAILED, f"Gave up after {retries} retries: {reason}")
        return None
    backoff = min(BACKOFF_BASE_SECONDS * 2**retries, BACKOFF_MAX_SECONDS) * random.uniform(0.75, 1)
    countdown = max(retry_in, backoff)
    type(run).objects.filter(pk=run.pk).update(error=f"Retrying in {countdown:.0f} s: {reason}"[:2000])
    return countdown


def run_finish_if_done(run: JudgeRun) -> bool:
    """Mark a live run finished once every planned (pair, order) has a verdict, counted in the table (verdicts
    another run wrote for the same judge and prompt count too)."""
    n = Verdict.objects.filter(
        judge=run.judge_id, prompt_version=run.prompt_version_id, pair_id__in=run.pair_ids
    ).count()
    if n < run.requests_planned:
        return False
    finished = JudgeRun.objects.filter(pk=run.pk, state__in=JudgeRun.LIVE).update(
        state=JudgeRun.State.SUCCEEDED, verdicts_done=n, finished_at=timezone.now()
    )
    if finished:
        run_ended.send(sender=JudgeRun, run=run)
    return bool(finished)


def run_begin(run: JudgeRun) -> list[list[int]]:
    """Mark a queued run running and split its pairs into chunks for the chunk tasks; [] when nothing is left to do
    (the run is then finished). A chunk sent again later skips what is done."""
    JudgeRun.objects.filter(pk=run.pk, state=JudgeRun.State.QUEUED).update(
        state=JudgeRun.State.RUNNING, started_at=run.started_at or timezone.now(), heartbeat_at=timezone.now()
    )
    if run_finish_if_done(run):
        return []
    size = max(settings.JUDGE_CHUNK_PAIRS, 2 * run.judge.max_concurrency)
    return [run.pair_ids[start : start + size] for start in range(0, len(run.pair_ids), size)]
