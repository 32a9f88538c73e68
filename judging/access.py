"""One access helper per model (404 for anyone who may not see it). Judges and runs are for a project's leads
(and admins); annotators never see verdicts."""

from __future__ import annotations

from django.db.models import Q
from django.http import Http404

from annotation.access import LEAD
from annotation.models import Project

from .models import JudgeConfig, JudgeRun


def _is_lead(user, project: Project) -> bool:
    return user.is_authenticated and getattr(project, "user_role", None) == LEAD


def judge_for_user(user, project: Project, public_id) -> JudgeConfig:
    """A judge of this project, or one shared with every project, for the project's leads."""
    if not _is_lead(user, project):
        raise Http404("No such judge.")
    try:
        return JudgeConfig.objects.get(Q(project=project) | Q(project__isnull=True), public_id=public_id)
    except (JudgeConfig.DoesNotExist, ValueError, TypeError):
        raise Http404("No such judge.") from None


def run_for_user(user, project: Project, public_id) -> JudgeRun:
    if not _is_lead(user, project):
        raise Http404("No such run.")
    try:
        return JudgeRun.objects.select_related("judge", "prompt_version", "project").get(
            project=project, public_id=public_id
        )
    except (JudgeRun.DoesNotExist, ValueError, TypeError):
        raise Http404("No such run.") from None
