"""One access helper per model (404 for anyone who may not see it). Judges and runs are for a project's leads
(and admins); annotators never see verdicts."""

from __future__ import annotations

from django.db.models import Q

from annotation.access import lead_object_or_404
from annotation.models import Project

from .models import Composite, JudgeConfig, JudgeRun


def judge_for_user(user, project: Project, public_id) -> JudgeConfig:
    """A judge of this project, or one shared with every project, for the project's leads."""
    judges = JudgeConfig.objects.filter(Q(project=project) | Q(project__isnull=True))
    return lead_object_or_404(user, project, judges, "judge", public_id=public_id)


def run_for_user(user, project: Project, public_id) -> JudgeRun:
    runs = JudgeRun.objects.select_related("judge", "prompt_version", "project").filter(project=project)
    return lead_object_or_404(user, project, runs, "run", public_id=public_id)


def composite_for_user(user, project: Project, public_id) -> Composite:
    """A composite of this project, for the project's leads."""
    composites = Composite.objects.select_related("project").filter(project=project)
    return lead_object_or_404(user, project, composites, "composite", public_id=public_id)
