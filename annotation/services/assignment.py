"""The assignment engine: who labels which pair next.

Guarantees (PostgreSQL and SQLite alike):
- each pair is given to at most K distinct annotators at once, and ends with exactly K labels once the pool drains:
  ``Pair.open_slots`` (K - labels - live leases) is decremented by a conditional UPDATE that only succeeds while it
  is positive, on a row taken with ``SELECT ... FOR UPDATE SKIP LOCKED`` (PostgreSQL) or inside an IMMEDIATE
  transaction (SQLite, which serializes writers);
- nobody is served the same pair twice (unique constraint on (pair, annotator) for regular assignments);
- a lease that runs out returns its slot to the pool (``leases_reclaim``, run at the start of every claim);
- order: pairs closest to completion first (fewest open slots), then a random order that is seeded per annotator:
  pairs carry a random ``shuffle_key`` and each annotator walks that order from their own offset, so two annotators
  rarely contend for the same rows and an annotator's sequence is reproducible.

Practice items, calibration (gold) pairs and mirrored repeats are mixed in by ``_new_assignment``; they take no
slot (annotation/services/mixed_in.py).
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections import Counter
from contextlib import nullcontext
from datetime import datetime, timedelta
from functools import lru_cache

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from config.rows import columns, db_value, fetch_one, instance

from ..errors import AnnotatorPaused, AssignmentAlreadyAnswered, AssignmentExpired
from ..models import Assignment, GuidelineVersion, Membership, Pair, Project
from .mixed_in import gold_source, practice_source, repeat_source, sides

RECLAIM_BATCH = 500


def annotator_offset(project_id: int, user_id: int) -> int:
    """Where in the shuffled order this annotator starts: stable per (project, annotator)."""
    digest = hashlib.sha256(f"{project_id}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def leases_reclaim(*, project: Project, now: datetime | None = None, wait: bool = False) -> int:
    """Expire live assignments whose lease ran out and give their slots back. Returns how many expired.

    Rows another transaction holds are skipped (it is reclaiming them), unless ``wait``: then this returns only
    after such a concurrent reclaim has committed, so its freed slots are visible to the caller. Rows are locked
    and pairs updated in pk order, so concurrent reclaims cannot deadlock. One indexed query when nothing has
    expired."""
    now = now or timezone.now()
    with transaction.atomic(savepoint=False):  # inside assignment_next: part of its transaction, no savepoint
        expired = list(
            Assignment.objects.select_for_update(skip_locked=not wait)
            .filter(project=project, state=Assignment.State.ACTIVE, expires_at__lte=now)
            .order_by("pk")
            .values_list("pk", "pair_id", "kind")[:RECLAIM_BATCH]
        )
        if not expired:
            return 0
        Assignment.objects.filter(pk__in=[pk for pk, _, _ in expired]).update(
            state=Assignment.State.EXPIRED, finished_at=now
        )
        # Only regular assignments hold one of the pair's K slots; calibration, practice and repeats take none.
        held = Counter(pair_id for _, pair_id, kind in expired if kind == Assignment.Kind.REGULAR)
        for pair_id, n in sorted(held.items()):
            Pair.objects.filter(pk=pair_id, gold="").update(open_slots=F("open_slots") + n)
        return len(expired)


_CLAIM_SQL = """
UPDATE {pair} SET open_slots = open_slots - 1
WHERE id = (
    SELECT p.id FROM {pair} p
    WHERE {candidates}
      AND NOT EXISTS (
          SELECT 1 FROM {assignment} a
          WHERE a.pair_id = p.id AND a.annotator_id = %s AND a.kind IN ('regular', 'gold', 'practice')
      )
    ORDER BY {order} LIMIT 1 {lock}
) AND open_slots > 0
RETURNING id, project_id,
    (SELECT g.id FROM {guideline} g WHERE g.project_id = {pair}.project_id ORDER BY g.version DESC LIMIT 1)
    AS version_id
"""
# PostgreSQL takes the slot and writes the assignment in one statement (a data-modifying CTE, which SQLite lacks):
# no BEGIN/COMMIT round trips, and the two writes still commit together.
_CLAIM_AND_INSERT_SQL = """
WITH claimed AS ({claim})
INSERT INTO {assignment}
    (public_id, project_id, pair_id, annotator_id, kind, state, left_is_a, guideline_version_id, served_at, expires_at)
SELECT %s, c.project_id, c.id, %s, %s, %s, %s, c.version_id, %s, %s FROM claimed c
RETURNING id, pair_id, guideline_version_id
"""
# Started pairs (fewer open slots than K) go first, fewest open slots first. Only the first STARTED_WINDOW of them
# are looked at: the ones this annotator already labelled stay in that set until others finish them, and without
# a cap a lone fast annotator would re-read all of them on every claim.
STARTED_WINDOW = 256
_STARTED = (
    "p.id IN (SELECT s.id FROM {pair} s WHERE s.project_id = %s AND s.open_slots >= 1 AND s.open_slots < %s"
    " ORDER BY s.open_slots, s.shuffle_key LIMIT " + str(STARTED_WINDOW) + ")"
)
# Untouched pairs (open_slots == K) are walked in shuffled order from the annotator's offset, wrapping around once.
_CLAIM_ATTEMPTS = (
    (_STARTED, "p.open_slots, p.shuffle_key"),
    ("p.project_id = %s AND p.open_slots = %s AND p.shuffle_key >= %s", "p.shuffle_key"),
    ("p.project_id = %s AND p.open_slots = %s AND p.shuffle_key < %s", "p.shuffle_key"),
)


@lru_cache(maxsize=8)
def _claim_statements(vendor: str, lock: str) -> tuple[str, ...]:
    tables = {"pair": Pair._meta.db_table, "assignment": Assignment._meta.db_table}
    tables["guideline"] = GuidelineVersion._meta.db_table
    claims = [
        _CLAIM_SQL.format(candidates=candidates.format(**tables), order=order, lock=lock, **tables)
        for candidates, order in _CLAIM_ATTEMPTS
    ]
    if vendor == "postgresql":
        return tuple(_CLAIM_AND_INSERT_SQL.format(claim=claim, **tables) for claim in claims)
    return tuple(claims)


def single_statement_writes() -> bool:
    """True where the hot paths write with one statement each (PostgreSQL), so they need no explicit transaction."""
    return connection.vendor == "postgresql"


def _regular_source(project: Project, annotator, now: datetime) -> Assignment | None:
    """Take one open slot and write the assignment for it; None when no pair is open for this annotator.

    Each attempt is one claim statement: its inner SELECT takes the row with FOR UPDATE SKIP LOCKED on PostgreSQL
    (concurrent claimers never wait on each other) and the outer conditional UPDATE decrements the slot count, which
    is also the guard on SQLite (no row locks there; IMMEDIATE transactions serialize writers). Written as SQL
    because this is the hottest path in the application: building these queries with the ORM cost more CPU than
    running them (docs/PERFORMANCE.md)."""
    k = project.overlap_k
    offset = annotator_offset(project.pk, annotator.pk)
    lock = connection.ops.for_update_sql(skip_locked=True) if connection.features.has_select_for_update else ""
    statements = _claim_statements(connection.vendor, lock)
    params = ([project.pk, k], [project.pk, k, offset], [project.pk, k, offset])
    assignment = Assignment(
        project=project,
        annotator=annotator,
        kind=Assignment.Kind.REGULAR,
        state=Assignment.State.ACTIVE,
        left_is_a=sides.random() < 0.5,
        served_at=now,
        expires_at=now + timedelta(seconds=project.lease_seconds),
    )
    insert_params = [
        assignment.public_id, annotator.pk, assignment.kind, assignment.state, assignment.left_is_a, now,
        assignment.expires_at,
    ]  # fmt: skip
    with connection.cursor() as cursor:
        for i in range(0 if k > 1 else 1, len(statements)):
            if single_statement_writes():
                cursor.execute(statements[i], [*params[i], annotator.pk, *insert_params])
                row = cursor.fetchone()
                if row is not None:
                    assignment.pk, assignment.pair_id, assignment.guideline_version_id = row
                    assignment._state.adding = False
                    return assignment
            else:
                cursor.execute(statements[i], [*params[i], annotator.pk])
                row = cursor.fetchone()
                if row is not None:
                    assignment.pair_id, assignment.guideline_version_id = row[0], row[2]
                    assignment.save(force_insert=True)
                    return assignment
    return None


def _new_assignment(project: Project, annotator, now: datetime) -> Assignment | None:
    """Practice items first (while the annotator is still practising), then mirrored repeats and calibration pairs at
    the project's rates, unannounced; otherwise a regular pair from the pool. Mixed-in items are served only while
    the pool has open pairs, so nobody ends their queue on a run of calibration items or repeats."""
    sources = []
    if project.practice_items > 0:
        sources.append(practice_source)
    if project.repeat_rate > 0 and sides.random() < project.repeat_rate:
        sources.append(repeat_source)
    if project.calibration_rate > 0 and sides.random() < project.calibration_rate:
        sources.append(gold_source)
    if sources and Pair.objects.filter(project=project, open_slots__gt=0).exists():
        for source in sources:
            assignment = source(project, annotator, now)
            if assignment is not None:
                return assignment
    return _regular_source(project, annotator, now)


# Reclaiming is one indexed query, but it runs in every claim's transaction; doing it at most once a second per
# project and process (and always when the pool looks empty) keeps it off the hot path.
RECLAIM_EVERY_SECONDS = 1.0
_last_reclaim: dict[int, float] = {}


def _reclaim_due(project_id: int) -> bool:
    now = time.monotonic()
    if now - _last_reclaim.get(project_id, float("-inf")) < RECLAIM_EVERY_SECONDS:
        return False
    _last_reclaim[project_id] = now
    return True


_PAUSED_SQL = "SELECT paused_reason FROM {membership} WHERE project_id = %s AND user_id = %s AND paused_at IS NOT NULL"


def paused_reason(project: Project, annotator) -> str | None:
    """Why the annotator is paused in the project, or None. project_for_user read it with the membership
    (``member_paused``, dropped by whatever pauses someone within the request); else one SQL query."""
    known = getattr(project, "member_paused", None)
    if known is not None and known[0] == annotator.pk:
        return known[1]
    with connection.cursor() as cursor:  # SQL, not the ORM: this runs on every claim (docs/PERFORMANCE.md)
        cursor.execute(_PAUSED_SQL.format(membership=Membership._meta.db_table), [project.pk, annotator.pk])
        row = cursor.fetchone()
    return None if row is None else row[0]


def assignment_next(*, project: Project, annotator, exclude: list | tuple = ()) -> Assignment | None:
    """The annotator's next assignment, or None when nothing is left for them. Raises AnnotatorPaused for an
    annotator a lead (or a failed calibration check) has paused.

    A live assignment they already hold comes first (oldest first), so reloading the page or a second tab shows
    the same pair instead of claiming another; ``exclude`` (public ids) skips the ones already on screen, which is
    how the page prefetches the following pair. Expired leases are returned to the pool at most a second after
    this notices them, and always before it answers "nothing left"."""
    paused = paused_reason(project, annotator)
    if paused is not None:
        raise AnnotatorPaused(f"You are paused in this project: {paused} A lead can reinstate you.")
    now = timezone.now()
    with nullcontext() if single_statement_writes() else transaction.atomic():
        if _reclaim_due(project.pk):
            leases_reclaim(project=project, now=now)
        held = _held(project, annotator, now, exclude)
        if held is not None:
            held.project = project
            return _with_pair(held)
        for attempt in range(2):
            assignment = _new_assignment(project, annotator, now)
            if assignment is not None:
                return _with_pair(assignment)
            if attempt:
                break
            # Looks empty: give back every lease that has run out (waiting for a concurrent reclaim to finish) and
            # look once more, so nobody is told "nothing left" while slots are on their way back to the pool.
            leases_reclaim(project=project, now=now, wait=True)
    return None


def _held(project: Project, annotator, now: datetime, exclude) -> Assignment | None:
    """The annotator's oldest live assignment other than ``exclude`` (public ids; malformed ones are ignored)."""
    keys = []
    for value in exclude:
        try:
            keys.append(db_value(Assignment, "public_id", uuid.UUID(str(value))))
        except (ValueError, TypeError, AttributeError):
            continue
    skip = f" AND a.public_id NOT IN ({', '.join(['%s'] * len(keys))})" if keys else ""
    row = fetch_one(
        f"SELECT {columns(Assignment, 'a')} FROM {Assignment._meta.db_table} a WHERE a.project_id = %s AND "
        f"a.annotator_id = %s AND a.state = %s AND a.expires_at > %s{skip} ORDER BY a.served_at, a.id LIMIT 1",
        [project.pk, annotator.pk, Assignment.State.ACTIVE, db_value(Assignment, "expires_at", now), *keys],
    )  # fmt: skip
    return None if row is None else instance(Assignment, row)


def _with_pair(assignment: Assignment) -> Assignment:
    """The assignment with its pair loaded (every caller shows it), by one written-out SELECT."""
    row = fetch_one(f"SELECT {columns(Pair, 'p')} FROM {Pair._meta.db_table} p WHERE p.id = %s", [assignment.pair_id])
    if row is not None:
        assignment.pair = instance(Pair, row)
    return assignment


def assignment_close(assignment: Assignment, state: str, now: datetime) -> None:
    """Move a live assignment to ``state`` (done/skipped) with one conditional UPDATE, or raise why it is not live.

    Must run inside a transaction: the UPDATE's row lock serializes a double click or a second tab, and the loser
    sees the winner's committed state. Raises AssignmentAlreadyAnswered (with ``.state``) or AssignmentExpired."""
    if Assignment.objects.filter(pk=assignment.pk, state=Assignment.State.ACTIVE, expires_at__gt=now).update(
        state=state, finished_at=now
    ):
        return
    raise_not_live(assignment)


def raise_not_live(assignment: Assignment) -> None:
    """Raise the reason a conditional close of this assignment changed nothing."""
    current = Assignment.objects.filter(pk=assignment.pk).values_list("state", flat=True).first()
    if current == Assignment.State.DONE:
        raise AssignmentAlreadyAnswered("This pair was already answered; your first answer was kept.", state=current)
    if current == Assignment.State.SKIPPED:
        raise AssignmentAlreadyAnswered("This pair was skipped; it has gone back to the pool.", state=current)
    raise AssignmentExpired(
        "Your time on this pair ran out and it was given back to the pool. Nothing was saved; load the next pair."
    )


def assignment_skip(*, assignment: Assignment) -> Assignment:
    """Record a skip: the annotator will not see this pair again and its slot goes back to the pool for others.
    A repeated skip (double press, retry) is a no-op."""
    now = timezone.now()
    with transaction.atomic():
        try:
            assignment_close(assignment, Assignment.State.SKIPPED, now)
        except AssignmentAlreadyAnswered as exc:
            if exc.state == Assignment.State.SKIPPED:
                return assignment
            raise
        if assignment.kind == Assignment.Kind.REGULAR:  # the only kind that holds a slot
            # gold="": a pair marked as calibration since it was served stays out of the pool
            Pair.objects.filter(pk=assignment.pair_id, gold="").update(open_slots=F("open_slots") + 1)
    assignment.state, assignment.finished_at = Assignment.State.SKIPPED, now
    return assignment
