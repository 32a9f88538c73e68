"""Celery tasks: thin wrappers that take ids, re-fetch, and call the code that does the work."""

from __future__ import annotations

import logging

from celery import shared_task

from .imports.importer import ImportRejected, pairs_import
from .models import ImportBatch

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, reject_on_worker_lost=True, soft_time_limit=55 * 60, time_limit=60 * 60)
def import_batch_run_task(batch_id: int) -> None:
    """Run a queued import. Safe to run twice: a finished batch is left alone, and a batch whose worker died
    mid-import (its transaction rolled back) is simply imported again."""
    batch = ImportBatch.objects.select_related("project", "created_by").filter(pk=batch_id).first()
    if batch is None or batch.state in (ImportBatch.State.SUCCEEDED, ImportBatch.State.FAILED):
        return
    options = batch.options or {}
    try:
        pairs_import(
            project=batch.project,
            path=batch.upload.path,
            filename=batch.filename,
            fmt=batch.requested_format or None,
            file_format=options.get("file_format") or None,
            user=batch.created_by,
            batch=batch,
            ultrafeedback_pairs=options.get("ultrafeedback_pairs") or "all",
        )
    except ImportRejected:
        # The file's errors are recorded on the batch for the user; retrying cannot fix them.
        logger.info("import batch %s rejected with %s errors", batch.pk, batch.error_count)
