from __future__ import annotations

import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotation.imports.importer import ImportRejected, pairs_import
from annotation.imports.readers import FILE_FORMATS
from annotation.imports.records import FORMATS, ULTRAFEEDBACK_MODES
from annotation.models import Project


class Command(BaseCommand):
    help = "Import preference pairs from a JSONL, JSON, CSV or Parquet file into a project (all or nothing)."

    def add_arguments(self, parser):
        parser.add_argument("project", help="the project's slug")
        parser.add_argument("file", help="path to the file")
        parser.add_argument("--format", dest="fmt", choices=FORMATS, help="record format (default: detect)")
        parser.add_argument("--file-format", choices=FILE_FORMATS, help="file type (default: from the extension)")
        parser.add_argument("--ultrafeedback-pairs", choices=ULTRAFEEDBACK_MODES, default="all")

    def handle(self, *args, project: str, file: str, fmt, file_format, ultrafeedback_pairs, **options):
        target = Project.objects.filter(slug=project).first()
        if target is None:
            raise CommandError(f"There is no project with the slug {project!r}.")
        path = Path(file)
        if not path.is_file():
            raise CommandError(f"{file}: no such file.")
        started = time.monotonic()
        try:
            batch = pairs_import(
                project=target,
                path=path,
                fmt=fmt,
                file_format=file_format,
                ultrafeedback_pairs=ultrafeedback_pairs,
                on_progress=lambda rows: self.stderr.write(f"  {rows:,} rows read..."),
            )
        except ImportRejected as exc:
            raise CommandError(str(exc)) from exc
        for warning in batch.warnings:
            self.stderr.write(f"warning: {warning}")
        elapsed = time.monotonic() - started
        self.stdout.write(
            f"Imported {batch.pairs_created} pairs ({batch.duplicates_skipped} duplicates skipped, "
            f"{batch.labels_created} labels) from {batch.filename} as {batch.detected_format} in {elapsed:.1f} s"
        )
