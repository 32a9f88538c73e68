"""Reads for curation and exports."""

from __future__ import annotations

from collections import defaultdict

from annotation.models import Label, Pair, Project
from annotation.selectors import pair_consensus, project_agreement
from judging.selectors import pair_judge_aggregate

from .curation import Candidate
from .models import CurationRecipe, DatasetExport


def curation_candidates(project: Project) -> list[Candidate]:
    """Every pair of the project with its human consensus (paused annotators left out, with tie and both-bad vote
    counts) and its judge aggregate."""
    human = {c["pair_id"]: c for c in pair_consensus(project)}
    counts: dict[int, dict[str, int]] = defaultdict(lambda: {"tie": 0, "both_bad": 0})
    rows = (
        Label.objects.filter(project=project, choice__in=["tie", "both_bad"])
        .exclude(assignment__kind__in=["repeat", "training", "gold"])
        .values_list("pair_id", "choice")
    )
    for pair_id, choice in rows:
        counts[pair_id][choice] += 1
    judges = pair_judge_aggregate(project)
    out = []
    for pair_id, prompt, a, b, gold in (
        Pair.objects.filter(project=project)
        .order_by("pk")
        .values_list("pk", "prompt", "response_a", "response_b", "gold")  # fmt: skip
    ):
        h = human.get(pair_id)
        if h is not None:
            h = {**h, **counts.get(pair_id, {"tie": 0, "both_bad": 0})}
        out.append(Candidate(pair_id, prompt, a, b, gold=gold, human=h, judge=judges.get(pair_id)))
    return out


def recipes_of(project: Project):
    """The latest version of each recipe."""
    latest = {}
    for recipe in CurationRecipe.objects.filter(project=project).order_by("name", "-version"):
        latest.setdefault(recipe.name, recipe)
    return list(latest.values())


def exports_of(project: Project):
    return DatasetExport.objects.filter(project=project).select_related("recipe", "created_by")[:100]


def agreement_for_datasheet(project: Project) -> dict:
    figures = project_agreement(project, n_boot=200)
    return {k: figures[k] for k in ("label_space", "labels", "fleiss_kappa", "krippendorff_alpha", "percent_agreement")}
