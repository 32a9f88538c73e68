"""Files a project leaves behind: its exports and its training jobs' artifacts go when the project does."""

from __future__ import annotations

import shutil

from django.db import transaction
from django.dispatch import receiver

from annotation.services.project_delete import project_deleting

from .models import TrainingJob
from .storage import export_root, job_dir


@receiver(project_deleting)
def remove_project_files(sender, project, **kwargs) -> None:
    folders = [export_root() / project.slug, *(job_dir(job) for job in TrainingJob.objects.filter(project=project))]

    def remove():
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)

    transaction.on_commit(remove)
