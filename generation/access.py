"""One access helper per model (404 for anyone who may not see it). Generation is for a project's leads (and
admins); annotators see a candidate only as a blinded response to rate (candidate_for_rater), never its provenance."""

from __future__ import annotations

from django.db.models import Q
from django.http import Http404

from annotation.access import lead_object_or_404
from annotation.models import Membership, Project

from .models import Candidate, GenerationRun, Generator, PromptSet


def prompt_set_for_user(user, project: Project, public_id) -> PromptSet:
    return lead_object_or_404(user, project, PromptSet.objects.filter(project=project), "prompt set",
                              public_id=public_id)  # fmt: skip


def generator_for_user(user, project: Project, public_id) -> Generator:
    return lead_object_or_404(user, project, Generator.objects.filter(project=project), "generator",
                              public_id=public_id)  # fmt: skip


def generation_run_for_user(user, project: Project, public_id) -> GenerationRun:
    runs = GenerationRun.objects.select_related("generator", "rater", "prompt_set", "project").filter(project=project)
    return lead_object_or_404(user, project, runs, "generation run", public_id=public_id)


def candidate_for_user(user, project: Project, candidate_id) -> Candidate:
    """A candidate of the project, for its leads (calibration answers)."""
    candidates = Candidate.objects.filter(prompt__prompt_set__project=project)
    return lead_object_or_404(user, project, candidates, "candidate", pk=candidate_id)


def open_candidates(project: Project):
    """Candidates people may rate: of the project's prompt sets open for rating, not empty, and not naming a model
    where the set hides those."""
    return Candidate.objects.filter(
        prompt__prompt_set__project=project, prompt__prompt_set__rating_k__gt=0, empty=False
    ).exclude(Q(prompt__prompt_set__hide_identity_leaks=True) & ~Q(identity_leak=""))


def may_rate(user, project: Project) -> bool:
    """Members rate (a paused annotator does not); ``project`` comes from project_for_user."""
    if getattr(project, "user_role", None) is None:
        return False
    paused = Membership.objects.filter(user=user, project=project, paused_at__isnull=False).exists()
    return not paused


def candidate_for_rater(user, project: Project, candidate_id) -> Candidate:
    """A candidate this member may rate (open, not hidden); 404 for anything else."""
    if not may_rate(user, project):
        raise Http404("No such candidate.")
    try:
        return open_candidates(project).select_related("prompt").get(pk=int(candidate_id))
    except (Candidate.DoesNotExist, ValueError, TypeError):
        raise Http404("No such candidate.") from None
