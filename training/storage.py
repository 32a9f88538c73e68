"""Where exports and training jobs keep their files on disk (served only through the authenticated download views,
never as media)."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings


def export_root() -> Path:
    return Path(settings.EXPORT_ROOT)


def export_folder(export) -> Path:
    """One folder per export: EXPORT_ROOT/<project slug>/<export id>/."""
    return export_root() / export.project.slug / str(export.public_id)


def job_dir(job) -> Path:
    """One folder per training job: TRAINING_ROOT/<job id>/ (log, adapter, model card)."""
    return Path(settings.TRAINING_ROOT) / str(job.public_id)
