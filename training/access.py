"""One access helper per model: recipes and exports are for a project's leads (and admins); 404 for anyone else."""

from __future__ import annotations

from annotation.access import lead_object_or_404
from annotation.models import Project

from .models import CurationRecipe, DatasetExport


def recipe_for_user(user, project: Project, recipe_id) -> CurationRecipe:
    return lead_object_or_404(user, project, CurationRecipe.objects.filter(project=project), "recipe", pk=recipe_id)


def export_for_user(user, project: Project, public_id) -> DatasetExport:
    exports = DatasetExport.objects.select_related("recipe", "project", "created_by").filter(project=project)
    return lead_object_or_404(user, project, exports, "export", public_id=public_id)
