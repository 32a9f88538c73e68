"""Pairs mixed into an annotator's queue besides the K-overlap pool: practice, calibration (gold) and mirrored
repeats. None of them holds one of a pair's K slots (``open_slots``) or counts toward K (``label_count``).

- **Practice** (``Project.practice_items`` = N > 0): an annotator's first N answered items are calibration pairs,
  announced as practice and answered with immediate feedback (the expected answer and the lead's explanation).
  A pair used for practice is never served to that annotator again as an unannounced calibration item.
- **Calibration (gold)**: at ``Project.calibration_rate``, a calibration pair the annotator has not seen, served
  exactly like a regular pair (same page, fields, URL and timing).
- **Mirrored repeat**: at ``Project.repeat_rate``, a pair the annotator labelled at least ``REPEAT_GAP`` items ago,
  served again with the sides swapped; at most one repeat per (pair, annotator), enforced by a unique constraint.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from django.db import IntegrityError, connection, transaction

from ..models import Assignment, GuidelineVersion, Pair, Project

REPEAT_GAP = 10  # other items the annotator must have been served since the original
sides = random.SystemRandom()

_TABLES = {
    "pair": Pair._meta.db_table,
    "assignment": Assignment._meta.db_table,
    "guideline": GuidelineVersion._meta.db_table,
}
_LATEST_GUIDELINES = "(SELECT g.id FROM {guideline} g WHERE g.project_id = %s ORDER BY g.version DESC LIMIT 1)"

_UNSEEN_GOLD_SQL = (
    "SELECT p.id, "
    + _LATEST_GUIDELINES
    + """
FROM {pair} p
WHERE p.project_id = %s AND p.gold <> ''
  AND NOT EXISTS (
      SELECT 1 FROM {assignment} a
      WHERE a.pair_id = p.id AND a.annotator_id = %s AND a.kind IN ('regular', 'gold', 'practice')
  )
ORDER BY p.shuffle_key LIMIT 1
"""
).format(**_TABLES)

_PRACTICE_DONE_SQL = """
SELECT count(*) FROM (
    SELECT 1 FROM {assignment}
    WHERE project_id = %s AND annotator_id = %s AND kind = 'practice' AND state = 'done' LIMIT %s
) t
""".format(**_TABLES)

# Candidates: this annotator's labelled regular pairs, older than their last REPEAT_GAP assignments, not repeated
# yet; taken in public_id order (random, since public ids are UUID4) so which pairs come back is not predictable.
_REPEAT_SQL = (
    "SELECT a.pair_id, NOT a.left_is_a, "
    + _LATEST_GUIDELINES
    + """
FROM {assignment} a
WHERE a.project_id = %s AND a.annotator_id = %s AND a.kind = 'regular' AND a.state = 'done'
  AND a.id <= (
      SELECT l.id FROM {assignment} l WHERE l.project_id = %s AND l.annotator_id = %s
      ORDER BY l.id DESC LIMIT 1 OFFSET %s
  )
  AND NOT EXISTS (
      SELECT 1 FROM {assignment} r WHERE r.pair_id = a.pair_id AND r.annotator_id = a.annotator_id
        AND r.kind = 'repeat'
  )
ORDER BY a.public_id LIMIT 1
"""
).format(**_TABLES)


def _fetch(sql: str, params: list):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def _create(project: Project, annotator, now: datetime, *, kind: str, pair_id: int, left_is_a: bool, version_id):
    """Write the assignment, or return None if a concurrent request (a second tab) just wrote the same one."""
    try:
        with transaction.atomic():
            return Assignment.objects.create(
                project=project,
                pair_id=pair_id,
                annotator=annotator,
                kind=kind,
                state=Assignment.State.ACTIVE,
                left_is_a=left_is_a,
                guideline_version_id=version_id,
                served_at=now,
                expires_at=now + timedelta(seconds=project.lease_seconds),
            )
    except IntegrityError:
        return None


def _unseen_gold(project: Project, annotator, now: datetime, kind: str) -> Assignment | None:
    row = _fetch(_UNSEEN_GOLD_SQL, [project.pk, project.pk, annotator.pk])
    if row is None:
        return None
    return _create(project, annotator, now, kind=kind, pair_id=row[0], left_is_a=sides.random() < 0.5,
                   version_id=row[1])  # fmt: skip


def practice_source(project: Project, annotator, now: datetime) -> Assignment | None:
    """A practice item while the annotator has answered fewer than ``practice_items`` of them, else None."""
    if project.practice_items <= 0:
        return None
    (done,) = _fetch(_PRACTICE_DONE_SQL, [project.pk, annotator.pk, project.practice_items])
    if done >= project.practice_items:
        return None
    return _unseen_gold(project, annotator, now, Assignment.Kind.PRACTICE)


def gold_source(project: Project, annotator, now: datetime) -> Assignment | None:
    """A calibration pair this annotator has not seen yet, or None. Nothing is locked: no slot is taken."""
    return _unseen_gold(project, annotator, now, Assignment.Kind.GOLD)


def repeat_source(project: Project, annotator, now: datetime) -> Assignment | None:
    """One of the annotator's earlier pairs again, sides swapped, or None when none is old enough."""
    row = _fetch(_REPEAT_SQL, [project.pk, project.pk, annotator.pk, project.pk, annotator.pk, REPEAT_GAP])
    if row is None:
        return None
    return _create(project, annotator, now, kind=Assignment.Kind.REPEAT, pair_id=row[0], left_is_a=row[1],
                   version_id=row[2])  # fmt: skip
