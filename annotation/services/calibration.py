"""Calibration (gold) answers: pause an annotator whose recent accuracy drops below the project's threshold."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from ..models import PAUSE_AFTER, ROLLING_GOLD_WINDOW, Assignment, Label, Membership, Pair, Project


def calibration_check(*, assignment: Assignment) -> Membership | None:
    """After a calibration answer: if the annotator's accuracy over their last ROLLING_GOLD_WINDOW calibration
    answers (at least PAUSE_AFTER of them) is below the project's gold_threshold, pause them with the reason.
    Returns the membership when it was paused now, else None."""
    project = assignment.project
    recent = list(
        Label.objects.filter(
            project=project, annotator_id=assignment.annotator_id, assignment__kind=Assignment.Kind.GOLD
        )
        .exclude(pair__gold="")  # a pair a lead has since un-marked no longer has an expected answer
        .order_by("-created_at", "-pk")
        .values_list("choice", "pair__gold")[:ROLLING_GOLD_WINDOW]
    )
    if len(recent) < PAUSE_AFTER:
        return None
    accuracy = sum(choice == gold for choice, gold in recent) / len(recent)
    if accuracy >= project.gold_threshold:
        return None
    reason = (
        f"Calibration accuracy {accuracy:.0%} on the last {len(recent)} calibration pairs "
        f"(threshold {project.gold_threshold:.0%}), paused automatically on {timezone.now():%Y-%m-%d %H:%M} UTC."
    )
    updated = Membership.objects.filter(
        project=project, user_id=assignment.annotator_id, paused_at__isnull=True
    ).update(paused_at=timezone.now(), paused_reason=reason)
    return Membership.objects.get(project=project, user_id=assignment.annotator_id) if updated else None


@transaction.atomic
def membership_reinstate(*, project: Project, user) -> Membership:
    """A lead lets a paused annotator work again; their labels count in consensus again."""
    membership = Membership.objects.select_for_update().get(project=project, user=user)
    membership.paused_at, membership.paused_reason = None, ""
    membership.save(update_fields=["paused_at", "paused_reason"])
    return membership


@transaction.atomic
def pair_gold_set(*, pair: Pair, gold: str, explanation: str = "") -> Pair:
    """Mark a pair as a calibration pair with its expected answer (or un-mark it with ``gold=""``).

    Marking takes the pair out of the K pool (open_slots 0); regular labels it already has stay, but agreement and
    consensus leave calibration pairs out. Un-marking puts it back with K minus its regular labels and live regular
    leases open. The explanation is shown to annotators in practice."""
    project = pair.project
    allowed = set(project.choices)
    if gold and gold not in allowed:
        raise ValidationError({"gold": f"Expected answer must be one of: {', '.join(sorted(allowed))}."})
    explanation = explanation.strip()
    if explanation and not gold:
        raise ValidationError({"gold_explanation": "An explanation needs an expected answer."})
    locked = Pair.objects.select_for_update().get(pk=pair.pk)
    locked.gold, locked.gold_explanation = gold, explanation
    if gold:
        locked.open_slots = 0
    else:
        live = Assignment.objects.filter(
            pair=locked, kind=Assignment.Kind.REGULAR, state=Assignment.State.ACTIVE
        ).count()
        locked.open_slots = max(project.overlap_k - locked.label_count - live, 0)
    locked.save(update_fields=["gold", "gold_explanation", "open_slots"])
    return locked
