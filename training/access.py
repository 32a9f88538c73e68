"""One access helper per model: recipes and exports are for a project's leads (and admins), training jobs and their
evaluations for admins; 404 for anyone else."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import Http404

from annotation.access import lead_object_or_404, project_for_user
from annotation.models import Project

from .models import Campaign, CurationRecipe, DatasetExport, Evaluation, Sweep, TrainingJob


def recipe_for_user(user, project: Project, recipe_id) -> CurationRecipe:
    return lead_object_or_404(user, project, CurationRecipe.objects.filter(project=project), "recipe", pk=recipe_id)


def export_for_user(user, project: Project, public_id) -> DatasetExport:
    exports = DatasetExport.objects.select_related("recipe", "project", "created_by").filter(project=project)
    return lead_object_or_404(user, project, exports, "export", public_id=public_id)


def admin_or_404(user, what: str = "page") -> None:
    """Training is for admins (staff) only; everyone else gets the same 404 as for something missing."""
    if not (user.is_authenticated and user.is_staff):
        raise Http404(f"No such {what}.")


def _admin_object_or_404(user, queryset, what: str, public_id):
    """The object with this public id, for admins only: 404 for anyone else, a missing object or a malformed id."""
    admin_or_404(user, what)
    try:
        return queryset.get(public_id=public_id)
    except (queryset.model.DoesNotExist, ValueError, ValidationError):
        raise Http404(f"No such {what}.") from None


def trainable_export_for_user(user, public_id) -> DatasetExport:
    """An export a training job may start from: any project's, for admins only."""
    return _admin_object_or_404(user, DatasetExport.objects.select_related("project", "recipe"), "export", public_id)


def job_for_user(user, public_id) -> TrainingJob:
    """Training jobs are for admins (staff) only."""
    jobs = TrainingJob.objects.select_related("export", "export__recipe", "project", "created_by", "sweep")
    return _admin_object_or_404(user, jobs, "training job", public_id)


def evaluation_for_user(user, public_id) -> Evaluation:
    """Evaluations are a training job's: admins only."""
    evaluations = Evaluation.objects.select_related(
        "job", "baseline_job", "project", "judge", "prompt_set", "ab_project", "tuned_run", "baseline_run",
        "judge_run", "tuned_generator", "baseline_generator",
    )  # fmt: skip
    return _admin_object_or_404(user, evaluations, "evaluation", public_id)


def sweep_for_user(user, public_id) -> Sweep:
    """Sweeps are training jobs': admins only."""
    sweeps = Sweep.objects.select_related("export", "export__recipe", "project", "promoted_job", "created_by")
    return _admin_object_or_404(user, sweeps, "sweep", public_id)


def campaign_for_user(user, public_id, *, manage: bool = False) -> Campaign:
    """Campaigns are launched, resumed and cancelled by admins (``manage``); a project's leads may follow theirs
    (its data stages are their project's prompts and pairs). 404 for anyone else."""
    if not user.is_authenticated:
        raise Http404("No such campaign.")
    campaigns = Campaign.objects.select_related("project", "judge", "recipe", "prompt_set", "eval_prompt_set")
    try:
        campaign = campaigns.get(public_id=public_id)
    except (Campaign.DoesNotExist, ValueError, ValidationError):
        raise Http404("No such campaign.") from None
    if user.is_staff:
        return campaign
    if manage:
        raise Http404("No such campaign.")
    project_for_user(user, campaign.project.slug, role="lead")  # 404 unless a lead of its project
    return campaign
