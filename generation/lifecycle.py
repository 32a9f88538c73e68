"""A generation run's state on the worker side: begun by the dispatch task, finished once every planned slot has
a candidate (and, with a rater, every candidate a rating). Conditional UPDATEs, so a task delivered twice changes
nothing the second time. Stops (budget, fatal errors) are judging.lifecycle.run_stop, shared with judge runs."""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone

from judging.signals import run_ended

from .models import Candidate, GenerationRun, Rating
from .plan import slots


def _slot_candidates(run: GenerationRun):
    keys = [s.key for s in slots(run.plan)]
    return Candidate.objects.filter(generator=run.generator_id, prompt_id__in=run.prompt_ids, slot_key__in=keys)


def run_counts(run: GenerationRun) -> tuple[int, int]:
    """(candidates, ratings by the run's rater) in the table for the run's prompts and slots, whoever wrote them."""
    candidates = _slot_candidates(run)
    ratings = Rating.objects.filter(candidate__in=candidates, judge=run.rater_id) if run.rater_id else None
    return candidates.count(), ratings.count() if ratings is not None else 0


def run_finish_if_done(run: GenerationRun) -> bool:
    candidates, ratings = run_counts(run)
    if candidates < run.requests_planned or (run.rater_id and ratings < candidates):
        return False
    finished = GenerationRun.objects.filter(pk=run.pk, state__in=GenerationRun.LIVE).update(
        state=GenerationRun.State.SUCCEEDED, candidates_done=candidates, ratings_done=ratings,
        ratings_planned=candidates if run.rater_id else 0, finished_at=timezone.now(),
    )  # fmt: skip
    if finished:
        run_ended.send(sender=GenerationRun, run=run)
    return bool(finished)


def run_begin(run: GenerationRun) -> list[list[int]]:
    """Mark a queued run running and split its prompts into chunks; [] when nothing is left (the run is finished)."""
    GenerationRun.objects.filter(pk=run.pk, state=GenerationRun.State.QUEUED).update(
        state=GenerationRun.State.RUNNING, started_at=run.started_at or timezone.now(), heartbeat_at=timezone.now()
    )
    if run_finish_if_done(run):
        return []
    per_prompt = max(1, len(slots(run.plan)))
    size = max(1, max(settings.GENERATION_CHUNK_REQUESTS, 2 * run.generator.max_concurrency) // per_prompt)
    return [run.prompt_ids[start : start + size] for start in range(0, len(run.prompt_ids), size)]
