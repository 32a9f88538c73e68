"""Dataset exports: creating one (built here for small projects, queued for a worker otherwise)."""

from __future__ import annotations

from django.core.exceptions import ValidationError

from annotation.models import Project
from judging.models import Composite

from ..export.build import export_build
from ..models import CurationRecipe, DatasetExport
from ..tasks import export_build_task

INLINE_EXPORT_MAX_PAIRS = 5_000  # larger projects export on a worker, with progress on the export page


def export_create(*, project: Project, recipe: CurationRecipe, fmt: str, user, conversational: bool = False,
                  test_fraction: float = 0.1, seed: int = 0, run_now: bool | None = None,
                  pair_ids: list[int] | None = None) -> DatasetExport:  # fmt: skip
    """Create an export of the recipe's rows. It is built in this process when ``run_now`` (the command) or, by
    default, when the project is small; otherwise it is queued for a worker after the transaction commits."""
    if recipe.project_id != project.pk:
        raise ValidationError({"recipe": "This recipe belongs to another project."})
    criterion = recipe.config.get("criterion")
    if criterion and criterion not in project.criteria:  # the project's criteria changed since the recipe was saved
        raise ValidationError({"recipe": f"This recipe reads the criterion {criterion}, no longer the project's."})
    composite = recipe.config.get("composite")
    if composite and not Composite.objects.filter(project=project, name=composite).exists():
        raise ValidationError({"recipe": f"This recipe reads the composite {composite}, which no longer exists."})
    if fmt not in DatasetExport.Format.values:
        raise ValidationError({"format": f"Format must be one of: {', '.join(DatasetExport.Format.values)}."})
    if not 0.0 <= test_fraction < 1.0:
        raise ValidationError({"test_fraction": "The test fraction must be at least 0 and below 1."})
    export = DatasetExport.objects.create(
        project=project, recipe=recipe, format=fmt, conversational=conversational, test_fraction=test_fraction,
        seed=seed, created_by=user, pair_ids=sorted(pair_ids or []),
    )  # fmt: skip
    if run_now is None:
        run_now = project.pairs.count() <= INLINE_EXPORT_MAX_PAIRS
    if run_now:
        export_build(export)
        export.refresh_from_db()
    else:
        export_build_task.delay_on_commit(export.pk)
    return export
