"""Every pair of a project as curation's columns (training.curation.steps.Candidates), read set-based: no text and
no Python object per pair (texts are read later, in batches, by training.curation.texts)."""

from __future__ import annotations

import numpy as np
from django.db.models import Case, CharField, Count, IntegerField, Q, Sum, Value, When
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

from annotation.models import Assignment, Label, Membership, Pair, Project
from annotation.selectors import pair_id_ranges
from config.pg_arrays import query_columns
from generation.models import PairOrigin
from judging.models import Composite, CompositeScore, JudgeConfig, PairJudgement, PromptVersion
from judging.stacking.combine import TIE_EPSILON

from .steps import GOLD_CHOICES, LEVEL, NO_GOLD, NONE, Candidates
from .texts import pair_text_reader


def _code(column: str, values: tuple[str, ...], default: int) -> Case:
    return Case(*(When(**{column: v}, then=Value(i)) for i, v in enumerate(values)), default=Value(default),
                output_field=IntegerField())  # fmt: skip


def _majority(votes: np.ndarray) -> np.ndarray:
    """Per row of a (rows, 3) vote count matrix: the column with most votes, LEVEL when the top two are level."""
    ranked = np.sort(votes, axis=1)
    return np.where(ranked[:, -1] > ranked[:, -2], votes.argmax(axis=1), LEVEL).astype(np.int8)


def _place(pair_ids: np.ndarray, ids: np.ndarray, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-pair values given for ``ids`` (any order) spread over the sorted ``pair_ids``, 0 elsewhere."""
    pos = np.searchsorted(pair_ids, ids)
    found = pos < len(pair_ids)
    found[found] = pair_ids[pos[found]] == ids[found]  # a pair deleted between the two reads
    out = {}
    for name, column in values.items():
        out[name] = np.zeros(len(pair_ids), dtype=column.dtype)
        out[name][pos[found]] = column[found]
    return out


def _human_votes(project: Project, pair_ids: np.ndarray, lo: int, hi: int, criterion: str = "",
                 ) -> dict[str, np.ndarray]:  # fmt: skip
    """Per pair, the labels annotation.selectors.pair_consensus counts (imported and regular human labels, paused
    annotators left out): votes for A, for B, for no preference. And, as curation always counted them, tie and
    both-bad votes of every imported and regular label (paused annotators included). One GROUP BY. With a
    ``criterion``, each label votes with its choice for that criterion (Label.criteria, A/B terms like the overall
    choice); a label without one does not vote."""
    paused = Membership.objects.filter(project=project, paused_at__isnull=False).values("user_id")
    counted = Q(annotator__isnull=True) | ~Q(annotator_id__in=paused)
    labels = Label.objects.filter(project=project, pair_id__gte=lo, pair_id__lte=hi)
    vote = "choice"
    if criterion:
        # Cast: a plain text comparison (KeyTextTransform's own lookups compare JSON values, which SQLite refuses)
        choice = Cast(KeyTextTransform(criterion, "criteria"), output_field=CharField())
        labels, vote = labels.annotate(criterion_vote=choice), "criterion_vote"
    rows = (
        labels.filter(Q(source=Label.Source.EXTERNAL) | Q(assignment__kind=Assignment.Kind.REGULAR))
        .values("pair_id")
        .annotate(
            a=Count("pk", filter=counted & Q(**{vote: "A"})),
            b=Count("pk", filter=counted & Q(**{vote: "B"})),
            none=Count("pk", filter=counted & Q(**{f"{vote}__in": ["tie", "both_bad"]})),
            tie=Count("pk", filter=Q(**{vote: "tie"})),
            both_bad=Count("pk", filter=Q(**{vote: "both_bad"})),
        )
        .order_by()
        .values_list("pair_id", "a", "b", "none", "tie", "both_bad")
    )
    columns = query_columns(rows, {"pair_id": "i8", "a": "i8", "b": "i8", "none": "i8", "tie": "i8",
                                   "both_bad": "i8"})  # fmt: skip
    return _place(pair_ids, columns.pop("pair_id"), columns)


def _latest_prompt_versions(project: Project) -> list[int]:
    """Each LLM judge's latest prompt version among those that judged the project's pairs. Reward models are left
    out: their margins are raw reward differences on another scale (they reach curation through composites)."""
    versions = (
        PromptVersion.objects.filter(judgements__pair__project=project, judge__kind=JudgeConfig.Kind.LLM)
        .values_list("judge_id", "version", "pk")
        .distinct()
    )
    latest: dict[int, tuple[int, int]] = {}
    for judge_id, version, pk in versions:
        if judge_id not in latest or version > latest[judge_id][0]:
            latest[judge_id] = (version, pk)
    return [pk for _, pk in latest.values()]


def _judge_aggregate(project: Project, latest: list[int], pair_ids: np.ndarray, lo: int, hi: int,
                     ) -> dict[str, np.ndarray]:  # fmt: skip
    """judging.selectors.pair_judge_aggregate as columns: per pair, over every judge's latest prompt version
    (``latest``), how many judges, votes for A / B / tie, the sum of margins and the consistent judges."""
    names = ("judges", "a", "b", "tie", "margin", "consistent")
    if not latest:
        return {name: np.zeros(len(pair_ids), dtype=np.float64 if name == "margin" else np.int64) for name in names}
    rows = (
        PairJudgement.objects.filter(
            pair__project=project, pair_id__gte=lo, pair_id__lte=hi, prompt_version_id__in=latest
        )  # fmt: skip
        .values("pair_id")
        .annotate(
            judges=Count("pk"),
            a=Count("pk", filter=Q(winner="A")),
            b=Count("pk", filter=Q(winner="B")),
            tie=Count("pk", filter=Q(winner="tie")),
            margin=Sum("margin"),
            consistent=Count("pk", filter=Q(consistent=True)),
        )
        .order_by()
        .values_list("pair_id", *names)
    )
    columns = query_columns(rows, {"pair_id": "i8", **{n: "f8" if n == "margin" else "i8" for n in names}})
    return _place(pair_ids, columns.pop("pair_id"), columns)


ARRAY_CHUNK = 250_000  # pair ids per set-based statement: bounds the size of one result


def _pair_columns(project: Project, lo: int, hi: int) -> dict[str, np.ndarray]:
    return query_columns(
        Pair.objects.filter(project=project, pk__gte=lo, pk__lte=hi)
        .annotate(gold_code=_code("gold", GOLD_CHOICES, NO_GOLD))
        .values_list("pk", "gold_code", "response_a_chars", "response_b_chars"),
        {"pair_id": "i8", "gold": "i8", "chars_a": "i8", "chars_b": "i8"},
    )


def _score_margins(project: Project, pair_ids: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Per pair built from rated candidates, their score difference (A is the higher); 0 for any other pair."""
    rows = PairOrigin.objects.filter(pair__project=project, pair_id__gte=lo, pair_id__lte=hi, margin__isnull=False)
    columns = query_columns(rows.values_list("pair_id", "margin"), {"pair_id": "i8", "margin": "f8"})
    return _place(pair_ids, columns.pop("pair_id"), columns)["margin"]


def _candidate_columns(project: Project, latest: list[int], lo: int, hi: int, criterion: str = "",
                       ) -> dict[str, np.ndarray]:  # fmt: skip
    """The Candidates columns of the pairs with ids in [lo, hi], sorted by id."""
    pairs = _pair_columns(project, lo, hi)
    order = np.argsort(pairs["pair_id"])
    pairs = {name: column[order] for name, column in pairs.items()}
    pair_ids, gold = pairs["pair_id"], pairs["gold"].astype(np.int8)
    human = _human_votes(project, pair_ids, lo, hi, criterion)
    votes = np.stack([human["a"], human["b"], human["none"]], axis=1).astype(np.int32)
    votes[gold != NO_GOLD] = 0  # consensus leaves calibration pairs out
    labels = votes.sum(axis=1)
    share = np.maximum(labels, 1)
    judge = _judge_aggregate(project, latest, pair_ids, lo, hi)
    judge_winner = _majority(np.stack([judge["a"], judge["b"], judge["tie"]], axis=1))
    return {
        "pair_id": pair_ids,
        "gold": gold,
        "human_labels": labels.astype(np.int32),
        "human_majority": _majority(votes),
        "human_vote_margin": np.where(labels > 0, (votes[:, 0] - votes[:, 1]) / share, 0.0),
        "human_agreement": np.where(labels > 0, votes.max(axis=1) / share, 0.0),
        "human_tie": human["tie"].astype(np.int32),
        "human_both_bad": human["both_bad"].astype(np.int32),
        "judges": judge["judges"].astype(np.int32),
        "judge_winner": np.where(judge_winner == LEVEL, NONE, judge_winner).astype(np.int8),
        "judge_mean_margin": judge["margin"] / np.maximum(judge["judges"], 1),
        "judge_consistent": judge["consistent"].astype(np.int32),
        "chars_a": pairs["chars_a"].astype(np.int32),
        "chars_b": pairs["chars_b"].astype(np.int32),
        "score_margin": _score_margins(project, pair_ids, lo, hi),
    }


def _composite_margins(project: Project, name: str, pair_ids: np.ndarray) -> np.ndarray:
    """Per pair (sorted ``pair_ids``), the named composite's stored preference as a signed strength: the sign of its
    score (A above 0; 0 within judging.stacking's tie tolerance) times the share of the composite's scored pairs
    whose |score| is at most this one's. NaN where it has no score (not computed, not judged, or no such composite)."""
    out = np.full(len(pair_ids), np.nan)
    composite = Composite.objects.filter(project=project, name=name).first()
    if composite is None:
        return out
    rows = CompositeScore.objects.filter(composite=composite).values_list("pair_id", "value")
    columns = query_columns(rows, {"pair_id": "i8", "value": "f8"})
    values = columns["value"]
    magnitude = np.abs(values)
    strength = np.searchsorted(np.sort(magnitude), magnitude, side="right") / max(len(values), 1)
    signed = np.where(values > TIE_EPSILON, strength, np.where(values < -TIE_EPSILON, -strength, 0.0))
    pos = np.searchsorted(pair_ids, columns["pair_id"])
    found = pos < len(pair_ids)
    found[found] = pair_ids[pos[found]] == columns["pair_id"][found]
    out[pos[found]] = signed[found]
    return out


def curation_candidates(project: Project, *, criterion: str = "", composite: str = "",
                        read_ahead: bool | None = None) -> Candidates:  # fmt: skip
    """Every pair of the project as columns (training.curation.steps.Candidates): its human consensus as
    annotation.selectors.pair_consensus computes it (paused annotators left out; calibration pairs have none), tie
    and both-bad vote counts, its judge aggregate as judging.selectors.pair_judge_aggregate computes it, and its
    response lengths. With a ``criterion`` (one of Project.criteria) the human figures are those of that
    criterion's choices instead of the overall one (per-axis preference data). Set-based statements over ranges of
    about ARRAY_CHUNK pair ids; no text is read (the returned text reader reads them later, in batches;
    ``read_ahead`` as in training.curation.texts.pair_text_reader). With a ``composite`` (a name), its stored
    scores as ``composite_margin``."""
    latest = _latest_prompt_versions(project)
    parts = [_candidate_columns(project, latest, lo, hi, criterion) for lo, hi in pair_id_ranges(project, ARRAY_CHUNK)]
    if not parts:
        parts = [_candidate_columns(project, latest, 1, 0, criterion)]
    columns = {name: np.concatenate([part.pop(name) for part in parts]) for name in list(parts[0])}
    if composite:
        columns["composite_margin"] = _composite_margins(project, composite, columns["pair_id"])
    return Candidates(**columns, texts=pair_text_reader(project, columns["pair_id"], read_ahead=read_ahead))
