"""Reads for composites: a project's composites, each scorer's current margins, a composite's summary and scores.
Leads only: callers reach a composite through judging.access.composite_for_user."""

from __future__ import annotations

import numpy as np
from django.db.models import Q

from annotation.models import Project
from config.pg_arrays import query_columns

from ..models import Composite, CompositeScore, JudgeConfig, PairJudgement
from ..selectors import prompt_current
from .combine import TIE_EPSILON, Margins, winner_of_value


def composites_of(project: Project):
    return Composite.objects.filter(project=project).select_related("created_by").order_by("name")


def composite_judge_ids(axes: list[dict]) -> list[int]:
    return sorted({s["judge"] for axis in axes for s in axis["scorers"]})


def composite_judges(composite: Composite) -> dict[int, JudgeConfig]:
    """The composite's judges by pk (still the project's own or shared); a deleted one is absent."""
    judges = JudgeConfig.objects.filter(Q(project=composite.project_id) | Q(project__isnull=True),
                                        pk__in=composite_judge_ids(composite.axes))  # fmt: skip
    return {j.pk: j for j in judges}


def scorer_margins(composite: Composite) -> tuple[dict[int, Margins], dict[int, int]]:
    """Each of the composite's scorers' current margins on the project: its PairJudgements under its current prompt
    version (judging.selectors.prompt_current; a reward model's single version), non-finite margins left out. And
    the version used per judge."""
    margins, versions = {}, {}
    for pk, judge in composite_judges(composite).items():
        version = prompt_current(judge)
        if version is None:
            continue
        versions[pk] = version.version
        rows = PairJudgement.objects.filter(judge=judge, prompt_version=version, pair__project=composite.project_id)
        columns = query_columns(rows.values_list("pair_id", "margin"), {"pair_id": "i8", "margin": "f8"})
        finite = np.isfinite(columns["margin"])
        margins[pk] = Margins(columns["pair_id"][finite], columns["margin"][finite])
    return margins, versions


def composite_scores(composite: Composite, *, order: str = "pair"):
    """The composite's scores, by pair id, or strongest A first (``-value``) or strongest B first (``value``)."""
    ordering = {"pair": ["pair_id"], "value": ["value", "pair_id"], "-value": ["-value", "pair_id"]}[order]
    return CompositeScore.objects.filter(composite=composite).order_by(*ordering)


def _score_row(score: CompositeScore) -> dict:
    return {"pair_id": score.pair_id, "value": score.value, "winner": winner_of_value(score.value),
            "axes": score.axes}  # fmt: skip


def composite_summary(composite: Composite, *, extremes: int = 5) -> dict:
    """Per axis its weight, the pairs it covers and its scorers (name, kind, weight, prompt version, pairs, mean and
    sd of their raw margins); Spearman's rho between axes; winners; the ``extremes`` pairs most preferring A (top:
    the highest composites above 0) and B (bottom: the lowest below 0). Figures are those of the last compute
    (Composite.stats); nothing before the first."""
    judges = composite_judges(composite)
    stats = composite.stats or {}
    scorer_stats = stats.get("scorers", {})
    axes = []
    for axis in composite.axes:
        scorers = []
        for s in axis["scorers"]:
            judge = judges.get(s["judge"])
            scorers.append({
                "judge": str(judge.public_id) if judge else None,
                "name": judge.name if judge else f"(deleted judge {s['judge']})",
                "kind": judge.kind if judge else None,
                "weight": s["weight"],
                "prompt_version": stats.get("versions", {}).get(str(s["judge"])),
                **scorer_stats.get(str(s["judge"]), {"pairs": None, "mean": None, "sd": None}),
            })  # fmt: skip
        axes.append({"name": axis["name"], "weight": axis["weight"], "pairs": stats.get("axes", {}).get(axis["name"]),
                     "scorers": scorers})  # fmt: skip
    scores = composite_scores(composite, order="-value")
    top = scores.filter(value__gt=TIE_EPSILON)[:extremes]
    bottom = composite_scores(composite, order="value").filter(value__lt=-TIE_EPSILON)[:extremes]
    return {
        "computed_at": composite.computed_at,
        "normalisation": composite.normalisation,
        "pairs": stats.get("pairs"),
        "winners": stats.get("winners"),
        "axes": axes,
        "correlations": stats.get("correlations", []),
        "top": [_score_row(s) for s in top],
        "bottom": [_score_row(s) for s in bottom],
    }
