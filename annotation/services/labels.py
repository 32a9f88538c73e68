"""Submitting a label. Idempotent: one label per assignment, enforced by the database."""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from ..errors import AssignmentAlreadyAnswered
from ..models import Assignment, Choice, Label, Pair, Project
from .assignment import assignment_close, raise_not_live, single_statement_writes
from .calibration import calibration_check

MAX_RATIONALE_CHARS = 10_000


@dataclass(frozen=True)
class Submission:
    """An annotator's answer, as they gave it on screen."""

    choice: str
    strength: int | None = None
    rationale: str = ""
    criteria: dict | None = None
    time_on_item_ms: int | None = None


def _to_ab(screen_choice: str, left_is_a: bool) -> str:
    if screen_choice == "left":
        return Choice.A if left_is_a else Choice.B
    if screen_choice == "right":
        return Choice.B if left_is_a else Choice.A
    return screen_choice


def _validate(project: Project, sub: Submission) -> None:
    errors: dict[str, str] = {}
    allowed = (
        {"left", "right"}
        | ({"tie"} if project.allow_tie else set())
        | ({"both_bad"} if project.allow_both_bad else set())
    )
    if sub.choice not in allowed:
        errors["choice"] = f"Choose one of: {', '.join(sorted(allowed))}."
    if project.strength_scale and sub.choice in ("left", "right"):
        if sub.strength is not None and not (1 <= sub.strength <= len(project.strength_scale)):
            errors["strength"] = f"Strength must be between 1 and {len(project.strength_scale)}."
    elif sub.strength is not None:
        errors["strength"] = "This project has no strength scale for this choice."
    rationale = sub.rationale.strip()
    if project.rationale_mode == Project.Rationale.REQUIRED and not rationale:
        errors["rationale"] = "A rationale is required in this project."
    if project.rationale_mode == Project.Rationale.OFF and rationale:
        errors["rationale"] = "This project does not take rationales."
    if len(rationale) > MAX_RATIONALE_CHARS:
        errors["rationale"] = f"A rationale may be at most {MAX_RATIONALE_CHARS} characters."
    elif "\x00" in rationale:
        errors["rationale"] = "A rationale cannot contain NUL characters."
    given = sub.criteria or {}
    missing = [c for c in project.criteria if c not in given]
    unknown = [c for c in given if c not in project.criteria]
    bad = [c for c, v in given.items() if c in project.criteria and v not in allowed]
    if missing or unknown or bad:
        parts = []
        if missing:
            parts.append(f"give a preference for {', '.join(missing)}")
        if unknown:
            parts.append(f"unknown criteria {', '.join(unknown)}")
        if bad:
            parts.append(f"invalid choice for {', '.join(bad)}")
        errors["criteria"] = "; ".join(parts).capitalize() + "."
    if sub.time_on_item_ms is not None and sub.time_on_item_ms < 0:
        errors["time_on_item_ms"] = "Time on item cannot be negative."
    if errors:
        raise ValidationError(errors)


def _same_answer(label: Label, choice: str, sub: Submission) -> bool:
    return (
        label.choice == choice
        and label.strength == sub.strength
        and label.rationale == sub.rationale.strip()
        and label.criteria == {k: _to_ab(v, label.left_is_a) for k, v in (sub.criteria or {}).items()}
    )


def label_submit(*, assignment: Assignment, submission: Submission) -> tuple[Label, bool]:
    """Store the annotator's answer. Returns (label, created).

    - The label records the choice in A/B terms, the side A was shown on, strength, rationale, per-criterion
      choices, time on item and the guideline version the pair was served under.
    - Submitting the same answer again (double click, retry after a lost response) returns the stored label with
      created=False. A different answer to an answered pair raises AssignmentAlreadyAnswered; an expired lease
      raises AssignmentExpired; invalid input raises ValidationError. None of these change anything.
    """
    project = assignment.project
    _validate(project, submission)
    now = timezone.now()
    choice = _to_ab(submission.choice, assignment.left_is_a)
    cap_ms = (now - assignment.served_at).total_seconds() * 1000 + 60_000
    time_ms = submission.time_on_item_ms
    label = Label(
        project_id=assignment.project_id,
        pair_id=assignment.pair_id,
        assignment=assignment,
        annotator_id=assignment.annotator_id,
        source=Label.Source.HUMAN,
        choice=choice,
        left_is_a=assignment.left_is_a,
        strength=submission.strength,
        rationale=submission.rationale.strip(),
        criteria={k: _to_ab(v, assignment.left_is_a) for k, v in (submission.criteria or {}).items()},
        # The browser's clock measures time on screen; never trust more than the server saw plus a minute.
        time_on_item_ms=None if time_ms is None else int(min(time_ms, cap_ms)),
        guideline_version_id=assignment.guideline_version_id,
        created_at=now,
    )
    # Only regular labels count toward K; practice, calibration and repeat answers are reported on their own.
    counts_toward_k = assignment.kind == Assignment.Kind.REGULAR
    try:
        if single_statement_writes():
            _store_in_one_statement(label, now, counts_toward_k)
        else:
            with transaction.atomic():
                assignment_close(assignment, Assignment.State.DONE, now)
                label.save(force_insert=True)
                if counts_toward_k:
                    Pair.objects.filter(pk=assignment.pair_id).update(label_count=F("label_count") + 1)
    except AssignmentAlreadyAnswered:
        existing = Label.objects.filter(assignment=assignment).first()
        if existing and _same_answer(existing, choice, submission):
            return existing, False
        raise
    assignment.state, assignment.finished_at = Assignment.State.DONE, now
    if assignment.kind == Assignment.Kind.GOLD:
        project.__dict__.pop("member_paused", None)  # the check may pause them: the next claim must ask again
        calibration_check(assignment=assignment)
    return label, True


_SUBMIT_SQL = """
WITH closed AS (
    UPDATE {assignment} SET state = 'done', finished_at = %s
    WHERE id = %s AND state = 'active' AND expires_at > %s
    RETURNING id, pair_id
), labelled AS (
    INSERT INTO {label} (project_id, pair_id, assignment_id, annotator_id, external_annotator, source, choice,
                         left_is_a, strength, rationale, criteria, time_on_item_ms, guideline_version_id, created_at)
    SELECT %s, c.pair_id, c.id, %s, '', %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s FROM closed c
    RETURNING id, pair_id
)
UPDATE {pair} SET label_count = label_count + %s FROM labelled l WHERE {pair}.id = l.pair_id
RETURNING l.id
"""


def _store_in_one_statement(label: Label, now, counts_toward_k: bool) -> None:
    """PostgreSQL: close the assignment, insert the label and count it in one statement (data-modifying CTEs), so
    the three writes commit together without BEGIN/COMMIT round trips. Raises like assignment_close when the
    assignment is not live (a concurrent double click waits on the row lock and then finds it done)."""
    sql = _SUBMIT_SQL.format(assignment=Assignment._meta.db_table, label=Label._meta.db_table, pair=Pair._meta.db_table)
    params = [
        now, label.assignment_id, now,
        label.project_id, label.annotator_id, label.source, label.choice, label.left_is_a, label.strength,
        label.rationale, json.dumps(label.criteria), label.time_on_item_ms, label.guideline_version_id, now,
        1 if counts_toward_k else 0,
    ]  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        raise_not_live(label.assignment)
    label.pk = row[0]
    label._state.adding = False
