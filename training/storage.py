"""Where exports and training jobs keep their files on disk (served only through the authenticated download views,
never as media)."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.http import FileResponse, Http404


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


def export_download(export, name: str) -> FileResponse:
    """The export's file ``name`` as an attachment (the page's and the API's download), or 404."""
    path = export_file(export, name)
    if path is None:
        raise Http404("No such file.")
    filename = f"{export.project.slug}-{export.recipe.name}-v{export.recipe.version}-{export.format}-{name}"
    return FileResponse(open(path, "rb"), as_attachment=True, filename=filename)


def job_file(job, name: str) -> Path | None:
    """An artifact of a training job by the name the job lists, or None; never outside the job's own folder."""
    entry = job.artifacts.get(name)
    if entry is None:
        return None
    path = (job_dir(job).parent / entry["path"]).resolve()
    if not path.is_file() or job_dir(job).resolve() not in path.parents:
        return None
    return path


def job_download(job, name: str) -> FileResponse:
    """The job's artifact ``name`` as an attachment (the page's and the API's download), or 404."""
    path = job_file(job, name)
    if path is None:
        raise Http404("No such file.")
    return FileResponse(open(path, "rb"), as_attachment=True, filename=f"{job.public_id}-{name}")
