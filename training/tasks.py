"""Celery tasks for exports: ids in, a service call. Safe to run twice (a finished export is left alone)."""

from __future__ import annotations

from celery import shared_task

from .models import DatasetExport
from .services import export_build


@shared_task(acks_late=True, reject_on_worker_lost=True, soft_time_limit=55 * 60, time_limit=60 * 60)
def export_build_task(export_id: int) -> None:
    export = DatasetExport.objects.select_related("project", "recipe", "created_by").filter(pk=export_id).first()
    if export is not None:
        export_build(export)
