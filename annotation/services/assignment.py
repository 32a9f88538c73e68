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

Seam for calibration items and mirrored repeats (issue 3): ``assignment_next`` asks each source in
``_SOURCES`` in turn; a source returns an Assignment or None.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from ..errors import AssignmentAlreadyAnswered, AssignmentExpired
from ..models import Assignment, GuidelineVersion, Pair, Project

RECLAIM_BATCH = 500
_sides = random.SystemRandom()


def annotator_offset(project_id: int, user_id: int) -> int:
    """Where in the shuffled order this annotator starts: stable per (project, annotator)."""
    digest = hashlib.sha256(f"{project_id}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def leases_reclaim(*, project: Project, now: datetime | None = None) -> int:
    """Expire live assignments whose lease ran out and give their slots back. Returns how many expired.

    Rows another transaction holds are skipped (it is submitting or reclaiming them); pairs are updated in pk
    order so concurrent reclaims cannot deadlock. Cheap when nothing has expired (one indexed query), so the
    claim path runs it every time instead of relying on a periodic job."""
    now = now or timezone.now()
    with transaction.atomic(savepoint=False):  # inside assignment_next: part of its transaction, no savepoint
        expired = list(
            Assignment.objects.select_for_update(skip_locked=True)
            .filter(project=project, state=Assignment.State.ACTIVE, expires_at__lte=now)
            .order_by("pk")
            .values_list("pk", "pair_id")[:RECLAIM_BATCH]
        )
        if not expired:
            return 0
        Assignment.objects.filter(pk__in=[pk for pk, _ in expired]).update(
            state=Assignment.State.EXPIRED, finished_at=now
        )
        for pair_id, n in sorted(Counter(pair_id for _, pair_id in expired).items()):
            Pair.objects.filter(pk=pair_id).update(open_slots=F("open_slots") + n)
        return len(expired)


def _claim_pair_id(project: Project, annotator) -> int | None:
    """Take one open slot; returns the pair id or None. Must run inside a transaction.

    Started pairs (fewer open slots than K) are few and go first, fewest open slots first; untouched pairs
    (open_slots == K) are walked in shuffled order from this annotator's offset, wrapping around once."""
    already_seen = Assignment.objects.filter(pair=OuterRef("pk"), annotator=annotator, kind=Assignment.Kind.REGULAR)
    candidates = Pair.objects.filter(project=project).exclude(Exists(already_seen))
    k = project.overlap_k
    offset = annotator_offset(project.pk, annotator.pk)
    attempts = [
        (Q(open_slots__gte=1, open_slots__lt=k), ("open_slots", "shuffle_key")),
        (Q(open_slots=k, shuffle_key__gte=offset), ("shuffle_key",)),
        (Q(open_slots=k, shuffle_key__lt=offset), ("shuffle_key",)),
    ]
    for condition, order in attempts[0 if k > 1 else 1 :]:
        pair_id = (
            candidates.filter(condition)
            .order_by(*order)
            .select_for_update(skip_locked=True, of=("self",))
            .values_list("pk", flat=True)
            .first()
        )
        # The conditional UPDATE is the guard on SQLite (no row locks) and a cheap double check elsewhere.
        if pair_id and Pair.objects.filter(pk=pair_id, open_slots__gt=0).update(open_slots=F("open_slots") - 1):
            return pair_id
    return None


def _regular_source(project: Project, annotator, now: datetime) -> Assignment | None:
    pair_id = _claim_pair_id(project, annotator)
    if pair_id is None:
        return None
    version_id = (
        GuidelineVersion.objects.filter(project=project).order_by("-version").values_list("pk", flat=True).first()
    )
    return Assignment.objects.create(
        project=project,
        pair_id=pair_id,
        annotator=annotator,
        kind=Assignment.Kind.REGULAR,
        left_is_a=_sides.random() < 0.5,
        guideline_version_id=version_id,
        served_at=now,
        expires_at=now + timedelta(seconds=project.lease_seconds),
    )


_SOURCES = (_regular_source,)


def assignment_next(*, project: Project, annotator, exclude: list | tuple = ()) -> Assignment | None:
    """The annotator's next assignment, or None when nothing is left for them.

    A live assignment they already hold comes first (oldest first), so reloading the page or a second tab shows
    the same pair instead of claiming another; ``exclude`` (public ids) skips the ones already on screen, which is
    how the page prefetches the following pair."""
    now = timezone.now()
    with transaction.atomic():
        leases_reclaim(project=project, now=now)
        held = (
            Assignment.objects.filter(
                project=project, annotator=annotator, state=Assignment.State.ACTIVE, expires_at__gt=now
            )
            .exclude(public_id__in=list(exclude))
            .order_by("served_at", "pk")
            .first()
        )
        if held is not None:
            return held
        for source in _SOURCES:
            assignment = source(project, annotator, now)
            if assignment is not None:
                return assignment
    return None


def assignment_close(assignment: Assignment, state: str, now: datetime) -> None:
    """Move a live assignment to ``state`` (done/skipped) with one conditional UPDATE, or raise why it is not live.

    Must run inside a transaction: the UPDATE's row lock serializes a double click or a second tab, and the loser
    sees the winner's committed state. Raises AssignmentAlreadyAnswered (with ``.state``) or AssignmentExpired."""
    if Assignment.objects.filter(pk=assignment.pk, state=Assignment.State.ACTIVE, expires_at__gt=now).update(
        state=state, finished_at=now
    ):
        return
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
        Pair.objects.filter(pk=assignment.pair_id).update(open_slots=F("open_slots") + 1)
    assignment.state, assignment.finished_at = Assignment.State.SKIPPED, now
    return assignment
