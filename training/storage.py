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


def export_file(export, name: str) -> Path | None:
    """The file ``name`` of a finished export (page and API downloads alike), or None. Only names the export lists
    are looked up, never a path from the URL; the ``hf`` folder is not a file; and the path must stay under
    EXPORT_ROOT whatever the database says."""
    entry = export.files.get(name)
    if export.state != export.State.SUCCEEDED or entry is None or name == "hf":
        return None
    path = (export_root() / entry["path"]).resolve()
    if not path.is_file() or export_root().resolve() not in path.parents:
        return None
    return path


def export_download_name(export, name: str) -> str:
    return f"{export.project.slug}-{export.recipe.name}-v{export.recipe.version}-{export.format}-{name}"


def job_file(job, name: str) -> Path | None:
    """An artifact of a training job by the name the job lists, or None; never outside the job's own folder."""
    entry = job.artifacts.get(name)
    if entry is None:
        return None
    path = (job_dir(job).parent / entry["path"]).resolve()
    if not path.is_file() or job_dir(job).resolve() not in path.parents:
        return None
    return path
