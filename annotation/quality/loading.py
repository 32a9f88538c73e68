"""A project's labels as numpy arrays, for the quality report (``project_quality`` in annotation/selectors.py).

Which labels: imported ones, and human ones whose assignment is regular or gold (calibration). Practice answers and
mirrored repeats are used by no part of the report and are left out here. Each part of the report then picks its
labels with the ``kind`` and ``pair_gold`` arrays.

Only integer ids and small integer codes are read, never a model instance or a username per label: annotator ids
become names once per annotator. On PostgreSQL one statement (one snapshot) returns every column as a single array
in PostgreSQL's binary format (config/pg_arrays.py says why), so there is no Python object per label. For the same
reason the small codes ride in the spare high bits of the ids (pair ids below 2**58, which PostgreSQL checks: the
statement fails rather than overflow). On SQLite (development) a plain fetch through the ORM.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Q

from config.pg_arrays import binary_results, pg_array

from ..models import Assignment, Label, Pair, Project
from .agreement import CHOICES, MISSING

KIND_EXTERNAL, KIND_REGULAR, KIND_GOLD, KIND_OTHER = 0, 1, 2, 3
NO_GOLD = MISSING  # pair_gold of a pair that is not a calibration pair
_KINDS = {Assignment.Kind.REGULAR: KIND_REGULAR, Assignment.Kind.GOLD: KIND_GOLD}


@dataclass(frozen=True, eq=False)
class ProjectLabels:
    """One entry per label in every per-label array, sorted by pair. ``raters`` names each rater index: the
    annotator's username, or ``imported:<name>`` for imported labels; ``rater_user_ids`` is each rater's user id
    (-1 for imported ones)."""

    raters: list[str]
    rater_user_ids: np.ndarray
    pair_id: np.ndarray  # int64
    rater: np.ndarray  # index into raters
    choice: np.ndarray  # int8: index into CHOICES, MISSING for anything else
    kind: np.ndarray  # int8: KIND_EXTERNAL, KIND_REGULAR or KIND_GOLD
    pair_gold: np.ndarray  # int8: the pair's expected answer (index into CHOICES), NO_GOLD on a normal pair
    longer: np.ndarray  # int8: sign(length of response A - length of response B), in characters
    left_is_a: np.ndarray  # int8: 1 or 0; -1 where not recorded (imported labels)
    time_ms: np.ndarray  # float64: time on item; NaN where not recorded
    gold_sequence: np.ndarray  # positions of the KIND_GOLD labels, oldest first (created_at, then pk)

    def __len__(self) -> int:
        return len(self.pair_id)


def project_labels(project: Project, *, pairs: tuple[int, int] | None = None) -> ProjectLabels:
    """The project's labels; with ``pairs`` = (lo, hi), only those of the pairs with ids in [lo, hi] (a part of a
    large project: annotation.selectors.project_agreement_figures reads one part at a time)."""
    lo, hi = pairs if pairs is not None else (None, None)
    if connection.vendor == "postgresql":
        columns = _fetch_postgresql(project.pk, lo, hi)
    else:
        columns = _fetch_orm(project, lo, hi)
    return _assemble(**columns)


# --------------------------------------------------------------------------------------------------------------
# PostgreSQL: one statement, every column one binary array


def _choice_code(column: str) -> str:
    """SQL for the CHOICES index of a stored choice; len(CHOICES) for anything else."""
    whens = " ".join(f"WHEN '{c}' THEN {i}" for i, c in enumerate(CHOICES))
    return f"(CASE {column} {whens} ELSE {len(CHOICES)} END)"


def _statement(*, ranged: bool) -> str:
    label, pair, assignment = Label._meta.db_table, Pair._meta.db_table, Assignment._meta.db_table

    def in_range(column: str) -> str:
        return f"AND {column} BETWEEN %(lo)s AND %(hi)s" if ranged else ""

    return f"""
    WITH special AS MATERIALIZED (
        SELECT id, kind FROM {assignment} WHERE project_id = %(project)s AND kind <> 'regular'
    )
    SELECT * FROM
    (SELECT array_send(array_agg(l.pair_id * 32 + {_choice_code("l.choice")} * 4
                                 + COALESCE(l.left_is_a::int + 1, 0))) AS human_pair_choice_side,
            array_send(array_agg(l.assignment_id)) AS human_assignment,
            array_send(array_agg(l.annotator_id::int8 * 4294967296 + COALESCE(l.time_on_item_ms::int8 + 1, 0)))
                AS human_annotator_time,
            array_send(array_agg(l.created_at) FILTER (WHERE l.assignment_id IN (SELECT id FROM special
                                                                                WHERE kind = 'gold')))
                AS gold_created,
            array_send(array_agg(l.id) FILTER (WHERE l.assignment_id IN (SELECT id FROM special WHERE kind = 'gold')))
                AS gold_label_id
     FROM {label} l WHERE l.project_id = %(project)s AND l.source = 'human' {in_range("l.pair_id")}) human,
    (SELECT array_send(array_agg(e.pair_id * 32 + {_choice_code("e.choice")} * 4)) AS external_pair_choice,
            array_send(array_agg(e.rank)) AS external_rank,
            array_agg(DISTINCT e.external_annotator ORDER BY e.external_annotator) AS external_names
     FROM (SELECT pair_id, choice, external_annotator, dense_rank() OVER (ORDER BY external_annotator) AS rank
           FROM {label} WHERE project_id = %(project)s AND source = 'external' {in_range("pair_id")}) e) external,
    (SELECT array_send(array_agg(id)) AS pair_ids,
            array_send(array_agg(((CASE gold WHEN '' THEN -1 ELSE {_choice_code("gold")} END + 1) * 4
                                  + sign(response_a_chars - response_b_chars) + 1)::int2))
                AS pair_gold_longer
     FROM {pair} WHERE project_id = %(project)s {in_range("id")}) pairs,
    (SELECT array_send(array_agg(id)) AS special_ids,
            array_send(array_agg((CASE kind WHEN 'gold' THEN {KIND_GOLD} ELSE {KIND_OTHER} END)::int2))
                AS special_kinds
     FROM special) assignments
    """


def _fetch_postgresql(project_id: int, lo: int | None, hi: int | None) -> dict:
    with connection.cursor() as cursor:
        binary_results(cursor)
        cursor.execute(_statement(ranged=lo is not None), {"project": project_id, "lo": lo, "hi": hi})
        row = dict(zip([c.name for c in cursor.description], cursor.fetchone(), strict=True))

    human = pg_array(row["human_pair_choice_side"], "i8")
    annotator_time = pg_array(row["human_annotator_time"], "i8")
    ms = annotator_time & 0xFFFFFFFF
    special_ids, special_kinds = pg_array(row["special_ids"], "i8"), pg_array(row["special_kinds"], "i2")
    kind = _kind_of_assignments(pg_array(row["human_assignment"], "i8"), special_ids, special_kinds)
    created = np.zeros(len(human), dtype=np.int64)
    label_id = np.zeros(len(human), dtype=np.int64)
    created[kind == KIND_GOLD] = pg_array(row["gold_created"], "i8")  # microseconds since 2000-01-01
    label_id[kind == KIND_GOLD] = pg_array(row["gold_label_id"], "i8")

    external = pg_array(row["external_pair_choice"], "i8")
    pair_gold_longer = pg_array(row["pair_gold_longer"], "i2")
    return {
        "pair_id": np.concatenate([human >> 5, external >> 5]),
        "user_id": np.concatenate([annotator_time >> 32, np.full(len(external), -1)]),
        "external": np.concatenate([np.full(len(human), -1), pg_array(row["external_rank"], "i8") - 1]),
        "external_names": row["external_names"] or [],
        "choice": np.concatenate([(human >> 2) & 7, (external >> 2) & 7]),
        "kind": np.concatenate([kind, np.full(len(external), KIND_EXTERNAL)]),
        "left_is_a": np.concatenate([(human & 3) - 1, np.full(len(external), -1)]),
        "time_ms": np.concatenate([np.where(ms > 0, ms - 1, np.nan), np.full(len(external), np.nan)]),
        "created": np.concatenate([created, np.zeros(len(external), np.int64)]),
        "label_id": np.concatenate([label_id, np.zeros(len(external), np.int64)]),
        "pair_ids": pg_array(row["pair_ids"], "i8"),
        "pair_gold": pair_gold_longer // 4 - 1,
        "pair_longer": pair_gold_longer % 4 - 1,
    }


def _kind_of_assignments(assignment_ids: np.ndarray, special_ids: np.ndarray, special_kinds: np.ndarray):
    """KIND_GOLD / KIND_OTHER for the assignments listed as not regular, KIND_REGULAR for all others."""
    order = np.argsort(special_ids)
    special_ids, special_kinds = special_ids[order], special_kinds[order]
    pos = np.minimum(np.searchsorted(special_ids, assignment_ids), max(len(special_ids) - 1, 0))
    listed = special_ids[pos] == assignment_ids if len(special_ids) else np.zeros(len(assignment_ids), bool)
    return np.where(listed, special_kinds[pos] if len(special_ids) else KIND_REGULAR, KIND_REGULAR)


# --------------------------------------------------------------------------------------------------------------
# SQLite and others: the ORM


def _codes(values, table: dict, default: int) -> np.ndarray:
    """Map a column of a few distinct values to integer codes without a Python call per value."""
    distinct, inverse = np.unique(np.asarray(values, dtype=str), return_inverse=True)
    return np.array([table.get(v, default) for v in distinct.tolist()], dtype=np.int64)[inverse]


def _fetch_orm(project: Project, lo: int | None, hi: int | None) -> dict:
    ranged = lo is not None
    rows = list(
        Label.objects.filter(project=project)
        .filter(Q(pair_id__gte=lo, pair_id__lte=hi) if ranged else Q())
        .filter(Q(source=Label.Source.EXTERNAL) | Q(assignment__kind__in=list(_KINDS)))
        .order_by("created_at", "pk")  # gold_sequence order: the row position is the time
        .values_list(
            "pair_id",
            "annotator_id",
            "external_annotator",
            "source",
            "assignment__kind",
            "choice",
            "left_is_a",
            "time_on_item_ms",
            "pk",
        )
    )
    pair_id, user_id, external_name, source, kind, choice, left_is_a, ms, pk = (
        zip(*rows, strict=True) if rows else [()] * 9
    )
    is_external = np.asarray(source, dtype=str) == Label.Source.EXTERNAL
    names, external_idx = np.unique(np.asarray(external_name, dtype=str)[is_external], return_inverse=True)
    external = np.full(len(rows), -1, dtype=np.int64)
    external[is_external] = external_idx
    pairs = list(
        Pair.objects.filter(project=project)
        .filter(Q(pk__gte=lo, pk__lte=hi) if ranged else Q())
        .values_list("pk", "gold", "response_a_chars", "response_b_chars")
    )
    pair_pk, gold, len_a, len_b = zip(*pairs, strict=True) if pairs else [()] * 4
    return {
        "pair_id": np.asarray(pair_id, dtype=np.int64),
        "user_id": np.where(is_external, -1, np.asarray([u or 0 for u in user_id], dtype=np.int64)),
        "external": external,
        "external_names": names.tolist(),
        "choice": _codes(choice, {c: i for i, c in enumerate(CHOICES)}, len(CHOICES)),
        "kind": np.where(is_external, KIND_EXTERNAL, _codes(kind, _KINDS, KIND_OTHER)),
        "left_is_a": np.array([-1 if v is None else int(v) for v in left_is_a], dtype=np.int64),
        "time_ms": np.array([np.nan if v is None else v for v in ms], dtype=float),
        "created": np.arange(len(rows), dtype=np.int64),
        "label_id": np.asarray(pk, dtype=np.int64),
        "pair_ids": np.asarray(pair_pk, dtype=np.int64),
        "pair_gold": _codes(gold, {c: i for i, c in enumerate(CHOICES)}, NO_GOLD),
        "pair_longer": np.sign(np.asarray(len_a, dtype=np.int64) - np.asarray(len_b, dtype=np.int64)),
    }


# --------------------------------------------------------------------------------------------------------------


def _assemble(*, pair_id, user_id, external, external_names, choice, kind, left_is_a, time_ms, created, label_id,
              pair_ids, pair_gold, pair_longer) -> ProjectLabels:  # fmt: skip
    # Sorted by pair: the pair's columns come from one searchsorted, and the rating matrix sorts by pair anyway.
    used = np.flatnonzero(kind != KIND_OTHER)
    order = used[np.argsort(pair_id[used])]
    label_pair = pair_id[order]
    pair_order = np.argsort(pair_ids)
    pair_ids = pair_ids[pair_order]
    pos = np.searchsorted(pair_ids, label_pair)
    # A pair missing here was deleted after its labels were read (SQLite reads in two snapshots): drop its labels.
    found = pos < len(pair_ids)
    found[found] = pair_ids[pos[found]] == label_pair[found]
    if not found.all():
        order, label_pair, pos = order[found], label_pair[found], pos[found]
    pair_row = pair_order[pos]

    # Raters: one username per annotator; imported labels after them.
    users, user_idx = np.unique(user_id[order], return_inverse=True)
    humans = users[users >= 0]
    usernames = dict(get_user_model().objects.filter(pk__in=humans.tolist()).values_list("pk", "username"))
    raters = [usernames.get(u, f"user:{u}") for u in humans.tolist()] + [f"imported:{n}" for n in external_names]
    ext = external[order]
    rater = np.where(ext >= 0, len(humans) + ext, user_idx - (len(users) - len(humans)))

    kind = kind[order]
    gold = np.flatnonzero(kind == KIND_GOLD)
    gold_sequence = gold[np.lexsort((label_id[order[gold]], created[order[gold]]))]
    choice = choice[order]
    return ProjectLabels(
        raters=raters,
        rater_user_ids=np.concatenate([humans, np.full(len(external_names), -1)]).astype(np.int64),
        pair_id=label_pair,
        rater=rater.astype(np.intp),
        choice=np.where(choice < len(CHOICES), choice, MISSING).astype(np.int8),
        kind=kind.astype(np.int8),
        pair_gold=np.asarray(pair_gold)[pair_row].astype(np.int8),
        longer=np.asarray(pair_longer)[pair_row].astype(np.int8),
        left_is_a=left_is_a[order].astype(np.int8),
        time_ms=time_ms[order].astype(float),
        gold_sequence=gold_sequence,
    )
