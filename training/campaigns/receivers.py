"""A campaign's round moves on as soon as the run, job or evaluation it waits for ends."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q
from django.dispatch import receiver

from judging.signals import run_ended

from ..models import CampaignRound
from ..signals import evaluation_ended, job_ended
from .tasks import campaign_advance_task

LIVE_ROUND = Q(state__in=[CampaignRound.State.RUNNING, CampaignRound.State.WAITING])


def _poke(rounds) -> None:
    for campaign_id in set(rounds.filter(LIVE_ROUND).values_list("campaign_id", flat=True)):
        transaction.on_commit(lambda pk=campaign_id: campaign_advance_task.delay(pk))


@receiver(run_ended)
def campaign_run_ended(sender, run, **kwargs) -> None:
    field = "judge_run" if sender.__name__ == "JudgeRun" else "generation_run"
    _poke(CampaignRound.objects.filter(**{field: run.pk}))


@receiver(job_ended)
def campaign_job_ended(sender, job_id, **kwargs) -> None:
    _poke(CampaignRound.objects.filter(job=job_id))


@receiver(evaluation_ended)
def campaign_evaluation_ended(sender, evaluation_id, **kwargs) -> None:
    _poke(CampaignRound.objects.filter(Q(eval_base=evaluation_id) | Q(eval_previous=evaluation_id)))
