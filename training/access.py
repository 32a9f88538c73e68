"""One access helper per model: recipes and exports are for a project's leads (and admins); 404 for anyone else."""

from __future__ import annotations

from django.http import Http404

from annotation.access import LEAD
from annotation.models import Project

from .models import CurationRecipe, DatasetExport


def _lead(user, project: Project) -> bool:
    return user.is_authenticated and getattr(project, "user_role", None) == LEAD


def recipe_for_user(user, project: Project, recipe_id) -> CurationRecipe:
    if not _lead(user, project):
        raise Http404("No such recipe.")
    try:
        return CurationRecipe.objects.get(project=project, pk=recipe_id)
    except (CurationRecipe.DoesNotExist, ValueError, TypeError):
        raise Http404("No such recipe.") from None


def export_for_user(user, project: Project, public_id) -> DatasetExport:
    if not _lead(user, project):
        raise Http404("No such export.")
    try:
        return DatasetExport.objects.select_related("recipe", "project", "created_by").get(
            project=project, public_id=public_id
        )
    except (DatasetExport.DoesNotExist, ValueError, TypeError):
        raise Http404("No such export.") from None
