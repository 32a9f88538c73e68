"""Files a project leaves behind (its exports and its training jobs' artifacts go when the project does), and
evaluations moving on as soon as a run they wait for ends."""

from __future__ import annotations

import shutil

from django.db import transaction
from django.db.models import Q
from django.dispatch import receiver

from annotation.services.project_delete import project_deleting
from judging.signals import run_ended

from .models import Evaluation, TrainingJob
from .storage import export_root, job_dir
from .tasks import evaluation_advance_task


@receiver(project_deleting)
def remove_project_files(sender, project, **kwargs) -> None:
    folders = [export_root() / project.slug, *(job_dir(job) for job in TrainingJob.objects.filter(project=project))]

    def remove():
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)

    transaction.on_commit(remove)


@receiver(project_deleting)
def forget_evaluation_pairs(sender, project, **kwargs) -> None:
    """An evaluation project going: the evaluations keep their reports and lose their A/B pairs and judge run."""
    Evaluation.objects.filter(ab_project=project).update(ab_project=None, judge_run=None, pair_ids=[])


@receiver(run_ended)
def evaluations_move_on(sender, run, **kwargs) -> None:
    field = "judge_run" if sender.__name__ == "JudgeRun" else None
    match = Q(judge_run=run.pk) if field else Q(tuned_run=run.pk) | Q(baseline_run=run.pk)
    for evaluation_id in Evaluation.objects.filter(match, state__in=Evaluation.LIVE).values_list("pk", flat=True):
        transaction.on_commit(lambda pk=evaluation_id: evaluation_advance_task.delay(pk))
