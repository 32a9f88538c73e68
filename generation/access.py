"""One access helper per model (404 for anyone who may not see it). Generation is for a project's leads (and
admins); annotators see candidates only as blinded responses (pairs, ratings), never here."""

from __future__ import annotations

from annotation.access import lead_object_or_404
from annotation.models import Project

from .models import GenerationRun, Generator, PromptSet


def prompt_set_for_user(user, project: Project, public_id) -> PromptSet:
    return lead_object_or_404(user, project, PromptSet.objects.filter(project=project), "prompt set",
                              public_id=public_id)  # fmt: skip


def generator_for_user(user, project: Project, public_id) -> Generator:
    return lead_object_or_404(user, project, Generator.objects.filter(project=project), "generator",
                              public_id=public_id)  # fmt: skip


def generation_run_for_user(user, project: Project, public_id) -> GenerationRun:
    runs = GenerationRun.objects.select_related("generator", "rater", "prompt_set", "project").filter(project=project)
    return lead_object_or_404(user, project, runs, "generation run", public_id=public_id)
