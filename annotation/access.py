"""One access helper per model. Each scopes its query to what the user may see and raises Http404 otherwise:
the same answer for "missing" and "forbidden", so ids cannot be probed."""

from __future__ import annotations

import uuid

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import Http404

from config.rows import columns, db_value, fetch_one, instance

from .models import Assignment, ImportBatch, Membership, Pair, Project

_PROJECT, _MEMBERSHIP, _ASSIGNMENT = Project._meta.db_table, Membership._meta.db_table, Assignment._meta.db_table
LEAD = Membership.Role.LEAD
ANNOTATOR = Membership.Role.ANNOTATOR


def projects_visible_to(user) -> QuerySet[Project]:
    if not user.is_authenticated:
        return Project.objects.none()
    if user.is_staff:
        return Project.objects.all()
    return Project.objects.filter(memberships__user=user)


def project_for_user(user, slug: str, *, role: str | None = None) -> Project:
    """The project if the user is a member; with role='lead' only its leads pass. Staff always pass.

    The returned project carries ``user_role`` ('lead' or 'annotator') so views need no second query. One SELECT
    written out (config.rows): this runs on every labelling request."""
    if not user.is_authenticated:
        raise Http404("No such project.")
    cols = columns(Project, "p")
    if user.is_staff:
        row = fetch_one(f"SELECT {cols} FROM {_PROJECT} p WHERE p.slug = %s", [slug])
        row = None if row is None else (*row, LEAD)
    else:
        row = fetch_one(f"SELECT {cols}, m.paused_at IS NOT NULL, m.paused_reason, m.role FROM {_MEMBERSHIP} m "
                        f"JOIN {_PROJECT} p ON p.id = m.project_id WHERE m.user_id = %s AND p.slug = %s",
                        [user.pk, slug])  # fmt: skip
    if row is None or (role == LEAD and row[-1] != LEAD):
        raise Http404("No such project.")
    project = instance(Project, row)
    project.user_role = row[-1]
    if not user.is_staff:  # saves assignment_next its own query (annotation.services.assignment.paused_reason)
        project.member_paused = (user.pk, row[-2] if row[-3] else None)
    return project


def assignment_for_user(user, public_id, *, project: Project) -> Assignment:
    """An assignment of this project that belongs to this user (nobody else may see or answer it, staff included).

    ``project`` comes from project_for_user, so membership is checked first; it is attached to the result, which
    saves a join on the submit path (the pair's texts are loaded only if the caller touches ``.pair``)."""
    if not user.is_authenticated:
        raise Http404("No such assignment.")
    try:
        key = db_value(Assignment, "public_id", uuid.UUID(str(public_id)))
    except (ValueError, TypeError, AttributeError):
        raise Http404("No such assignment.") from None
    row = fetch_one(f"SELECT {columns(Assignment, 'a')} FROM {_ASSIGNMENT} a WHERE a.public_id = %s "
                    "AND a.annotator_id = %s AND a.project_id = %s", [key, user.pk, project.pk])  # fmt: skip
    if row is None:
        raise Http404("No such assignment.")
    assignment = instance(Assignment, row)
    assignment.project = project
    return assignment


def lead_object_or_404(user, project: Project, queryset: QuerySet, what: str, **lookup):
    """The one object of ``queryset`` matching ``lookup``, for a lead of ``project`` (which project_for_user has
    given its ``user_role``); Http404 "No such <what>." for anyone else, a missing object or a malformed id. The
    per-model helpers below and in judging/ and training/ are this with their query."""
    if not user.is_authenticated or getattr(project, "user_role", None) != LEAD:
        raise Http404(f"No such {what}.")
    try:
        return queryset.get(**lookup)
    except (queryset.model.DoesNotExist, ValueError, TypeError, ValidationError):
        raise Http404(f"No such {what}.") from None


def import_for_user(user, project: Project, public_id) -> ImportBatch:
    """An import batch of a project the user leads."""
    return lead_object_or_404(user, project, ImportBatch.objects.filter(project=project), "import", public_id=public_id)


def membership_for_user(user, project: Project, member_id) -> Membership:
    """The membership of user ``member_id`` in a project the user leads, with its user."""
    memberships = Membership.objects.filter(project=project).select_related("user")
    return lead_object_or_404(user, project, memberships, "member", user_id=member_id)


def pair_for_user(user, project: Project, pair_id) -> Pair:
    """A pair of a project the user leads, with its model names and labels (annotators never see a pair by id)."""
    return lead_object_or_404(user, project, Pair.objects.filter(project=project), "pair", pk=pair_id)


def can_create_projects(user) -> bool:
    """Admins, and users given the add-project permission, create projects (and lead them)."""
    return user.is_staff or user.has_perm("annotation.add_project")
