"""Reads for generation: a project's prompt sets, generators and runs, a run's progress and flag counts, and the
candidates of a prompt set as pair-building items (score: the mean of the judges' parsed ratings)."""

from __future__ import annotations

from collections import defaultdict

from django.db.models import Avg, Count, F, Q
from django.utils import timezone

from annotation.models import Project

from .access import open_candidates
from .models import Candidate, GenerationRun, Generator, HumanRating, Prompt, PromptSet, Rating
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


def candidate_scores(candidate_ids, rater_id: int | None = None) -> dict[int, float]:
    """Each candidate's mean score over its raters, or one rater's score."""
    ratings = Rating.objects.filter(candidate_id__in=candidate_ids, status=Rating.Status.OK)
    if rater_id is not None:
        ratings = ratings.filter(judge_id=rater_id)
    rows = ratings.values("candidate_id").annotate(mean=Avg("score"))
    return {r["candidate_id"]: r["mean"] for r in rows}


def pairing_items(prompt_set: PromptSet, generator_ids: list[int] | None = None,
                  prompt_ids: list[int] | None = None, rater_id: int | None = None) -> list[Item]:  # fmt: skip
    """Every candidate of the prompt set (of the given generators and prompts, or all) as a pair-building item."""
    candidates = Candidate.objects.filter(prompt__prompt_set=prompt_set)
    if generator_ids:
        candidates = candidates.filter(generator_id__in=generator_ids)
    if prompt_ids is not None:
        candidates = candidates.filter(prompt_id__in=prompt_ids)
    rows = list(
        candidates.annotate(is_flagged=Count("pk", filter=flagged_q()))
        .order_by("pk")
        .values_list("pk", "prompt_id", "generator_id", "text", "is_flagged")
    )
    scores = candidate_scores([r[0] for r in rows], rater_id)
    return [Item(pk, prompt_id, generator_id, text, scores.get(pk), bool(flagged))
            for pk, prompt_id, generator_id, text, flagged in rows]  # fmt: skip


def prompts_with_candidates(prompt_set: PromptSet, *, limit: int = 50, offset: int = 0) -> list[dict]:
    """A page of prompts, each with its candidates, their flags and ratings (for the lead's review)."""
    prompts = list(Prompt.objects.filter(prompt_set=prompt_set).order_by("pk")[offset : offset + limit])
    candidates = (
        Candidate.objects.filter(prompt__in=prompts)
        .select_related("generator")
        .prefetch_related("ratings__judge")
        .annotate(ups=Count("human_ratings", filter=Q(human_ratings__up=True)),
                  downs=Count("human_ratings", filter=Q(human_ratings__up=False)))
        .order_by("prompt_id", "generator__name", "temperature", "sample")
    )  # fmt: skip
    by_prompt = defaultdict(list)
    for candidate in candidates:
        by_prompt[candidate.prompt_id].append(candidate)
    return [{"prompt": p, "candidates": by_prompt.get(p.pk, [])} for p in prompts]


def thumbs_majority(candidate_ids) -> dict[int, bool]:
    """Per candidate with people's thumbs: True or False by majority (ties and skips decide nothing)."""
    rows = (
        HumanRating.objects.filter(candidate_id__in=candidate_ids, up__isnull=False)
        .values("candidate_id")
        .annotate(ups=Count("pk", filter=Q(up=True)), downs=Count("pk", filter=Q(up=False)))
    )
    return {r["candidate_id"]: r["ups"] > r["downs"] for r in rows if r["ups"] != r["downs"]}


def rating_queue(project: Project, user):
    """What this person may still rate: open candidates they have not rated or skipped."""
    return open_candidates(project).exclude(human_ratings__annotator=user)


def next_candidate_for(project: Project, user) -> Candidate | None:
    """The next candidate for this person: calibration candidates first (everyone rates them), then those still
    short of the set's k ratings, the nearest to k first. Two people may take the last slot at once: k is a target,
    and the extra rating is kept (nothing submitted is thrown away)."""
    queue = rating_queue(project, user).annotate(
        given=Count("human_ratings", filter=Q(human_ratings__up__isnull=False), distinct=True)
    )
    gold = queue.exclude(gold="").order_by("pk").first()
    if gold is not None:
        return gold
    return (
        queue.filter(gold="", given__lt=F("prompt__prompt_set__rating_k"))
        .select_related("prompt")
        .order_by("-given", "prompt_id", "pk")
        .first()
    )


def rating_left(project: Project, user) -> int:
    return rating_queue(project, user).count()


def human_rating_report(prompt_set: PromptSet, *, n_boot: int = 500) -> dict:
    """People's ratings of the set's candidates: counts, agreement on thumbs (Fleiss' kappa, Krippendorff's alpha,
    percent agreement, with bootstrap intervals, over candidates with two or more thumbs) and each person's
    accuracy on calibration candidates."""
    import numpy as np  # numpy, scipy and krippendorff load only when a report is asked for (~1 s at start-up)

    from annotation.quality.agreement import figures_from_counts

    ratings = HumanRating.objects.filter(candidate__prompt__prompt_set=prompt_set)
    rows = list(ratings.values_list("candidate_id", "annotator__username", "up", "stars", "candidate__gold"))
    decided = [r for r in rows if r[2] is not None]
    per_candidate: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for candidate_id, _, up, _, _ in decided:
        per_candidate[candidate_id][0 if up else 1] += 1
    counts = np.array([c for c in per_candidate.values() if sum(c) >= 2], dtype=float).reshape(-1, 2)
    gold: dict[str, list[bool]] = defaultdict(list)
    for _, name, up, _, expected in decided:
        if expected:
            gold[name].append(up == (expected == "up"))
    stars = [r[3] for r in rows if r[3] is not None]
    return {
        "ratings": len(decided),
        "skips": len(rows) - len(decided),
        "people": len({r[1] for r in rows}),
        "thumbs_up_rate": sum(1 for r in decided if r[2]) / len(decided) if decided else None,
        "mean_stars": sum(stars) / len(stars) if stars else None,
        "candidates_with_two_or_more": len(counts),
        **figures_from_counts(counts, n_boot=n_boot),
        "calibration_accuracy": {name: {"correct": sum(hits), "n": len(hits)} for name, hits in sorted(gold.items())},
    }
