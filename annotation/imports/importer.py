"""Importing a file of pairs, all or nothing: the one function behind the upload (inline or on a worker), the API,
the management command and the demo. ``upload_import`` (annotation/services/imports.py) saves an upload and calls it
or queues it."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from config.shared_cache import cache_get, cache_set

from ..models import ImportBatch, Pair, Project
from .errorlog import ErrorLog, FileRejected
from .readers import FILE_FORMATS, Reader, check_file, detect_file_format, open_reader
from .records import FORMATS, ULTRAFEEDBACK_MODES, Normalizer
from .writer import WriteResult, pair_writer

PROGRESS_EVERY = 5_000
WRITE_CHUNK = 5_000
PROGRESS_TTL = 24 * 3600
ANALYZE_AFTER = 10_000


class ImportRejected(Exception):
    """The file had errors and nothing was imported; ``batch`` (state FAILED) holds the first 50 errors."""

    def __init__(self, batch: ImportBatch) -> None:
        self.batch = batch
        super().__init__(batch.filename)

    def __str__(self) -> str:
        batch = self.batch
        plural = "s" if batch.error_count != 1 else ""
        lines = [f"{batch.filename}: {batch.error_count} error{plural}; nothing was imported."]
        lines += [error["message"] for error in batch.errors]
        more = batch.error_count - len(batch.errors)
        if more > 0:
            lines.append(f"... and {more} more errors")
        return "\n".join(lines)


def progress_key(batch_pk: int) -> str:
    return f"import-progress:{batch_pk}"


def import_progress(batch: ImportBatch) -> dict | None:
    """{rows_read, bytes_read, total_bytes} of a running import (written by whichever process runs it), or None."""
    return cache_get(progress_key(batch.pk))


@dataclass
class _Run:
    """What one import has done so far; kept outside the transaction so a failure can still be recorded."""

    log: ErrorLog
    rows_read: int = 0
    detected_format: str = ""
    reader: Reader | None = None
    result: WriteResult | None = None
    on_progress: Callable[[int], None] | None = None
    batch_pk: int = 0

    def progress(self, *, notify: bool = True) -> None:
        reader = self.reader
        state = {
            "rows_read": self.rows_read,
            "bytes_read": reader.bytes_read if reader else 0,
            "total_bytes": reader.total_bytes if reader else 0,
        }
        cache_set(progress_key(self.batch_pk), state, timeout=PROGRESS_TTL)
        if notify and self.on_progress is not None:
            self.on_progress(self.rows_read)


class _Rollback(Exception):
    pass


def pairs_import(
    *,
    project: Project,
    path: str | os.PathLike,
    filename: str | None = None,
    fmt: str | None = None,
    file_format: str | None = None,
    user=None,
    batch: ImportBatch | None = None,
    ultrafeedback_pairs: str = "all",
    on_progress: Callable[[int], None] | None = None,
) -> ImportBatch:
    """Import the pairs in the file at ``path`` into ``project``; all or nothing.

    ``fmt`` is pairs, dpo or ultrafeedback (None: detected from the first record); ``file_format`` is jsonl, json,
    csv or parquet (None: from the extension, then the content). Pairs whose content (prompt + the two responses,
    in either order) the project already has, or that repeat within the file, are skipped and counted.

    Returns the batch in state SUCCEEDED with its counts. On any error nothing is written, the batch is saved in
    state FAILED with the first 50 errors (each naming file, line/item/row and field), and ImportRejected is raised.
    The batch row is saved outside the import transaction, so its final state survives the rollback.
    """
    path = os.fspath(path)
    filename = filename or os.path.basename(path)
    if batch is None:
        batch = ImportBatch.objects.create(
            project=project,
            created_by=user,
            filename=filename[:255],
            requested_format=fmt or "",
            options={"file_format": file_format or "", "ultrafeedback_pairs": ultrafeedback_pairs},
        )
    batch.state = ImportBatch.State.RUNNING
    batch.started_at = timezone.now()
    batch.save(update_fields=["state", "started_at"])
    run = _Run(log=ErrorLog(filename), on_progress=on_progress, batch_pk=batch.pk)
    try:
        with transaction.atomic():
            _import(
                run,
                project=project,
                batch=batch,
                path=path,
                filename=filename,
                fmt=fmt,
                file_format=file_format,
                ultrafeedback_pairs=ultrafeedback_pairs,
            )
            if run.log.count:
                raise _Rollback
    except _Rollback:
        run.result = None
    except FileRejected as exc:
        run.result = None
        run.log.error(exc.line, None, exc.message, prefix=False)
    except Exception:
        run.log.error(None, None, "the import stopped on an unexpected error; nothing was imported")
        _finish(batch, run)
        raise
    _finish(batch, run)
    if batch.state == ImportBatch.State.FAILED:
        raise ImportRejected(batch)
    if batch.pairs_created >= ANALYZE_AFTER and connection.vendor == "postgresql":
        # Fresh statistics keep the claim query on its index plan right after a big import, even where
        # autovacuum is off or has not caught up yet.
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {Pair._meta.db_table}")
    return batch


def _import(run: _Run, *, project, batch, path, filename, fmt, file_format, ultrafeedback_pairs) -> None:
    log = run.log
    if fmt and fmt not in FORMATS:
        raise FileRejected(f"{filename}: unknown format {fmt!r}; use one of {', '.join(FORMATS)}.")
    if file_format and file_format not in FILE_FORMATS:
        raise FileRejected(f"{filename}: unknown file format {file_format!r}; use one of {', '.join(FILE_FORMATS)}.")
    if ultrafeedback_pairs not in ULTRAFEEDBACK_MODES:
        raise FileRejected(
            f"{filename}: unknown ultrafeedback_pairs {ultrafeedback_pairs!r}; use {' or '.join(ULTRAFEEDBACK_MODES)}."
        )
    size = check_file(path, filename, settings.IMPORT_MAX_BYTES)
    reader = run.reader = open_reader(path, file_format or detect_file_format(path, filename), log, size)
    normalizer = Normalizer(
        fmt=fmt or None, ultrafeedback_pairs=ultrafeedback_pairs, log=log, max_chars=settings.IMPORT_MAX_FIELD_CHARS
    )
    writer = pair_writer(project=project, batch=batch)
    run.progress(notify=False)
    pending: list = []
    rows = 0
    for line, data in reader:
        rows += 1
        if data is not None:
            records = normalizer.records(line, data)
            # After the first error nothing more is written, but the whole file is still checked.
            if not log.count:
                pending += records
                if len(pending) >= WRITE_CHUNK:
                    writer.write(pending)
                    pending = []
        if rows % PROGRESS_EVERY == 0:
            run.rows_read = rows
            run.progress()
    run.rows_read = rows
    run.detected_format = normalizer.fmt or ""
    normalizer.finish()
    if rows == 0 and not log.count:
        log.error(None, None, "contains no records")
    if log.count:
        return
    if pending:
        writer.write(pending)
    run.result = writer.finish()
    run.progress()


def _finish(batch: ImportBatch, run: _Run) -> None:
    log, result = run.log, run.result
    batch.rows_read = run.rows_read
    batch.detected_format = run.detected_format
    batch.warnings = log.warnings_report()
    batch.finished_at = timezone.now()
    if result is not None and not log.count:
        batch.state = ImportBatch.State.SUCCEEDED
        batch.pairs_created = result.pairs_created
        batch.duplicates_skipped = result.duplicates_skipped
        batch.labels_created = result.labels_created
        batch.errors, batch.error_count = [], 0
    else:
        batch.state = ImportBatch.State.FAILED
        batch.pairs_created = batch.duplicates_skipped = batch.labels_created = 0
        batch.errors, batch.error_count = log.errors, log.count
    batch.save(
        update_fields=[
            "state",
            "rows_read",
            "detected_format",
            "warnings",
            "finished_at",
            "pairs_created",
            "duplicates_skipped",
            "labels_created",
            "errors",
            "error_count",
        ]
    )
