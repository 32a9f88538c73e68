from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Greatest

from ..models import GuidelineVersion, Membership, Pair, Project
from ..selectors import guidelines_current

PROJECT_SETTINGS = (
    "name",
    "description",
    "overlap_k",
    "allow_tie",
    "allow_both_bad",
    "strength_scale",
    "rationale_mode",
    "lease_seconds",
    "criteria",
    "calibration_rate",
    "gold_threshold",
    "practice_items",
    "repeat_rate",
)


def _clean_name_list(value, field: str) -> list[str]:
    if value in (None, ""):
        return []
    if isinstance(value, str):
        value = [part for part in value.split(",")]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationError({field: "Give a list of names."})
    names = [v.strip() for v in value if v.strip()]
    if len(set(names)) != len(names):
        raise ValidationError({field: "Names must be distinct."})
    if any(len(n) > 60 for n in names):
        raise ValidationError({field: "Each name must be at most 60 characters."})
    return names


def _apply_settings(project: Project, values: dict) -> None:
    unknown = set(values) - set(PROJECT_SETTINGS)
    if unknown:
        raise ValidationError(f"Unknown project settings: {', '.join(sorted(unknown))}.")
    for key, value in values.items():
        if key in ("strength_scale", "criteria"):
            value = _clean_name_list(value, key)
        setattr(project, key, value)
    if project.strength_scale and len(project.strength_scale) < 2:
        raise ValidationError({"strength_scale": "A strength scale needs at least two steps (or none)."})


@transaction.atomic
def project_create(*, name: str, slug: str, created_by, guidelines: str = "", **settings_values) -> Project:
    """Create a project, make its creator a lead and store guideline version 1."""
    project = Project(name=name, slug=slug, created_by=created_by)
    _apply_settings(project, settings_values)
    project.full_clean()
    project.save()
    if created_by is not None and not created_by.is_staff:
        Membership.objects.create(project=project, user=created_by, role=Membership.Role.LEAD)
    GuidelineVersion.objects.create(project=project, version=1, body=guidelines, created_by=created_by)
    return project


@transaction.atomic
def project_update(*, project: Project, **settings_values) -> Project:
    """Change project settings. Changing K re-opens (or closes) slots on every pair at once."""
    locked = Project.objects.select_for_update().get(pk=project.pk)
    old_k = locked.overlap_k
    _apply_settings(locked, settings_values)
    locked.full_clean()
    locked.save()
    delta = locked.overlap_k - old_k
    if delta:
        # Live leases are kept; a pair never gets a negative number of open slots.
        # Calibration pairs stay out of the pool (open_slots 0).
        Pair.objects.filter(project=locked, gold="").update(open_slots=Greatest(F("open_slots") + delta, 0))
    return locked


@transaction.atomic
def guidelines_update(*, project: Project, body: str, user) -> GuidelineVersion:
    """Every edit creates a new version; labels record the version their assignment was served under."""
    Project.objects.select_for_update().filter(pk=project.pk).get()
    current = guidelines_current(project)
    if current is not None and current.body == body:
        return current
    return GuidelineVersion.objects.create(
        project=project, version=(current.version + 1 if current else 1), body=body, created_by=user
    )


@transaction.atomic
def membership_set(*, project: Project, user, role: str) -> Membership:
    if role not in Membership.Role.values:
        raise ValidationError({"role": f"Role must be one of: {', '.join(Membership.Role.values)}."})
    membership, _ = Membership.objects.update_or_create(project=project, user=user, defaults={"role": role})
    return membership


@transaction.atomic
def membership_remove(*, project: Project, user, by=None) -> None:
    """Remove a member. Their finished labels stay; their live leases are released by the normal expiry. ``by``:
    the lead asking, who may not remove themselves (a project could otherwise lose its last lead by a slip)."""
    if by is not None and by.pk == user.pk:
        raise ValidationError("You cannot remove yourself.")
    Membership.objects.filter(project=project, user=user).delete()
