"""Curation recipes: saving a version, and previewing what a recipe would keep (whichever door the lead came in by)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from annotation.models import Project
from judging.models import Composite

from ..curation.candidates import curation_candidates
from ..curation.recipe import RecipeConfig
from ..curation.steps import chosen_longer_share, curate
from ..models import CurationRecipe


def _config(config: dict, project: Project) -> RecipeConfig:
    try:
        clean = RecipeConfig.from_dict(config)
    except (TypeError, ValueError) as exc:
        raise ValidationError({"config": str(exc)}) from None
    if clean.criterion and clean.criterion not in project.criteria:
        known = ", ".join(project.criteria) or "none"
        raise ValidationError({"criterion": f"{clean.criterion} is not one of the project's criteria ({known})."})
    if clean.composite and not Composite.objects.filter(project=project, name=clean.composite).exists():
        raise ValidationError({"composite": f"The project has no composite named {clean.composite}."})
    return clean


@transaction.atomic
def recipe_save(*, project: Project, name: str, config: dict, user) -> CurationRecipe:
    """Save a recipe; a changed config becomes the next version (exports keep pointing at theirs)."""
    clean = _config(config, project).as_dict()
    name = name.strip()
    if not name:
        raise ValidationError({"name": "A recipe needs a name."})
    Project.objects.select_for_update().filter(pk=project.pk).get()
    current = CurationRecipe.objects.filter(project=project, name=name).order_by("-version").first()
    if current is not None and current.config == clean:
        return current
    return CurationRecipe.objects.create(
        project=project, name=name, version=(current.version + 1) if current else 1, config=clean, created_by=user
    )


def recipe_preview(*, project: Project, config: dict, fmt: str = "dpo") -> dict:
    """What a recipe would produce now, without saving anything: the funnel, a margin histogram, the
    chosen-longer share and counts per preference source."""
    clean = _config(config, project)
    candidates = curation_candidates(project, criterion=clean.criterion, composite=clean.composite)
    rows, funnel = curate(candidates, clean, kto=fmt == "kto")
    return {
        "rows": len(rows),
        "funnel": funnel.steps,
        "margin_histogram": {"edges": [i / 10 for i in range(11)], "counts": rows.margin_histogram()},
        "chosen_longer_share": chosen_longer_share(rows),
        "sources": rows.sources(),
    }
