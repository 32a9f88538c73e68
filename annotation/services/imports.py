"""Uploads: the file a lead sends from the page or the API, saved and imported (inline when small, on a worker
otherwise)."""

from __future__ import annotations

import uuid
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError

from ..imports.importer import ImportRejected, pairs_import
from ..models import ImportBatch, Project
from ..tasks import import_batch_run_task


def upload_import(*, project: Project, user, upload, fmt: str | None = None, ultrafeedback_pairs: str = "all"):
    """Save an uploaded file (a Django UploadedFile) under MEDIA_ROOT and import it.

    Files up to IMPORT_INLINE_MAX_BYTES import during the call: the batch comes back SUCCEEDED or FAILED with its
    report (ImportRejected is not raised here). Larger files are queued for a worker after commit and the batch
    comes back QUEUED. A file over IMPORT_MAX_BYTES raises ValidationError and nothing is saved."""
    if upload.size > settings.IMPORT_MAX_BYTES:
        limit = settings.IMPORT_MAX_BYTES
        message = f"{upload.name} is {upload.size:,} bytes; the limit is {limit:,} (IMPORT_MAX_BYTES)."
        raise ValidationError({"file": message})
    folder = Path(settings.MEDIA_ROOT) / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4()}{Path(upload.name).suffix.lower()[:10]}"
    with open(path, "wb") as out:
        for chunk in upload.chunks():
            out.write(chunk)
    batch = ImportBatch.objects.create(
        project=project,
        created_by=user,
        filename=Path(upload.name).name[:255],
        upload=str(path.relative_to(settings.MEDIA_ROOT)),
        requested_format=fmt or "",
        options={"ultrafeedback_pairs": ultrafeedback_pairs or "all"},
    )
    if upload.size > settings.IMPORT_INLINE_MAX_BYTES:
        import_batch_run_task.delay_on_commit(batch.pk)
        return batch
    try:
        return pairs_import(
            project=project,
            path=path,
            filename=batch.filename,
            fmt=fmt or None,
            user=user,
            batch=batch,
            ultrafeedback_pairs=batch.options["ultrafeedback_pairs"],
        )
    except ImportRejected as exc:
        return exc.batch
