"""Reads for generation: a project's prompt sets, generators and runs, a run's progress and flag counts, and the
candidates of a prompt set as pair-building items (score: the mean of the judges' parsed ratings)."""

from __future__ import annotations

from collections import defaultdict

from django.db.models import Avg, Count, Q
from django.utils import timezone

from annotation.models import Project

from .models import Candidate, GenerationRun, Generator, Prompt, PromptSet, Rating
from .pairing import Item
from .plan import slots


def prompt_sets_of(project: Project):
    return PromptSet.objects.filter(project=project).order_by("-created_at")


def generators_of(project: Project):
    return Generator.objects.filter(project=project).order_by("name")


def runs_of(project: Project):
    return GenerationRun.objects.filter(project=project).select_related("generator", "prompt_set", "rater")[:50]


def flagged_q(prefix: str = "") -> Q:
    return (Q(**{f"{prefix}empty": True}) | Q(**{f"{prefix}truncated": True})
            | Q(**{f"{prefix}duplicate_of__isnull": False}) | ~Q(**{f"{prefix}identity_leak": ""}))  # fmt: skip


def run_progress(run: GenerationRun) -> dict:
    """Percent done, throughput (requests a minute, output tokens a second), tokens and cost, live or not."""
    end = run.finished_at or timezone.now()
    elapsed = (end - run.started_at).total_seconds() if run.started_at else 0
    planned = run.requests_planned + run.ratings_planned
    done = run.candidates_done + run.ratings_done
    return {
        "percent": min(100.0, 100 * done / planned) if planned else 0,
        "per_minute": 60 * (run.api_calls + run.cache_hits) / elapsed if elapsed > 0 else None,
        "tokens_per_second": run.tokens_out / elapsed if elapsed > 0 else None,
        "live": run.state in run.LIVE,
    }


def run_summary(run: GenerationRun) -> dict:
    """What the run's candidates are like: flag counts, finish reasons and the mean score per temperature."""
    keys = [s.key for s in slots(run.plan)]
    candidates = Candidate.objects.filter(generator=run.generator_id, prompt_id__in=run.prompt_ids, slot_key__in=keys)
    counts = candidates.aggregate(
        total=Count("pk"), empty=Count("pk", filter=Q(empty=True)), truncated=Count("pk", filter=Q(truncated=True)),
        duplicates=Count("pk", filter=Q(duplicate_of__isnull=False)),
        identity_leaks=Count("pk", filter=~Q(identity_leak="")), from_cache=Count("pk", filter=Q(from_cache=True)),
    )  # fmt: skip
    by_temperature = []
    if run.rater_id:
        rows = (
            Rating.objects.filter(candidate__in=candidates, judge=run.rater_id, status=Rating.Status.OK)
            .values("candidate__temperature")
            .annotate(mean=Avg("score"), n=Count("pk"))
            .order_by("candidate__temperature")
        )
        by_temperature = [{"temperature": r["candidate__temperature"], "mean_score": r["mean"], "n": r["n"]}
                          for r in rows]  # fmt: skip
    return {**counts, "mean_score_by_temperature": by_temperature}


def candidate_scores(candidate_ids) -> dict[int, float]:
    rows = (
        Rating.objects.filter(candidate_id__in=candidate_ids, status=Rating.Status.OK)
        .values("candidate_id")
        .annotate(mean=Avg("score"))
    )
    return {r["candidate_id"]: r["mean"] for r in rows}


def pairing_items(prompt_set: PromptSet, generator_ids: list[int] | None = None) -> list[Item]:
    """Every candidate of the prompt set (of the given generators, or all) as a pair-building item."""
    candidates = Candidate.objects.filter(prompt__prompt_set=prompt_set)
    if generator_ids:
        candidates = candidates.filter(generator_id__in=generator_ids)
    rows = list(
        candidates.annotate(is_flagged=Count("pk", filter=flagged_q()))
        .order_by("pk")
        .values_list("pk", "prompt_id", "generator_id", "text", "is_flagged")
    )
    scores = candidate_scores([r[0] for r in rows])
    return [Item(pk, prompt_id, generator_id, text, scores.get(pk), bool(flagged))
            for pk, prompt_id, generator_id, text, flagged in rows]  # fmt: skip


def prompts_with_candidates(prompt_set: PromptSet, *, limit: int = 50, offset: int = 0) -> list[dict]:
    """A page of prompts, each with its candidates, their flags and ratings (for the lead's review)."""
    prompts = list(Prompt.objects.filter(prompt_set=prompt_set).order_by("pk")[offset : offset + limit])
    candidates = (
        Candidate.objects.filter(prompt__in=prompts)
        .select_related("generator")
        .prefetch_related("ratings__judge")
        .order_by("prompt_id", "generator__name", "temperature", "sample")
    )
    by_prompt = defaultdict(list)
    for candidate in candidates:
        by_prompt[candidate.prompt_id].append(candidate)
    return [{"prompt": p, "candidates": by_prompt.get(p.pk, [])} for p in prompts]
