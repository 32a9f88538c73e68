"""Celery tasks of campaigns: an id in, one call, done (safe to run twice: training.campaigns.flow)."""

from __future__ import annotations

import logging

from celery import shared_task

from ..models import Campaign
from .flow import campaign_advance

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, reject_on_worker_lost=True, soft_time_limit=55 * 60, time_limit=60 * 60)
def campaign_advance_task(campaign_id: int) -> None:
    """Move a campaign on after something its round waits for ended (or a resume)."""
    campaign_advance(campaign_id)


@shared_task
def campaigns_advance_task() -> int:
    """Beat, every minute: every running campaign moves on (people's deadlines pass; a lost signal is caught)."""
    running = list(Campaign.objects.filter(state=Campaign.State.RUNNING).values_list("pk", flat=True))
    for campaign_id in running:
        try:
            campaign_advance(campaign_id)
        except Exception:  # noqa: BLE001 - one broken campaign must not hold up the others
            logger.exception("campaign %s could not move on", campaign_id)
    return len(running)
