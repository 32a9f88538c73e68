"""`python manage.py judge_project <slug> --judge <name> [--only-unlabelled] [--limit N] [--wait]`"""

from __future__ import annotations

import json
import time

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from annotation.models import Project
from judging.models import JudgeRun
from judging.selectors import judges_for, run_report
from judging.services import QueueUnavailable, run_start


class Command(BaseCommand):
    help = "Start an LLM judge run over a project's pairs on the judge queue (workers: celery ... -Q judge)."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--judge", required=True, help="the judge's name (the project's own, or a shared one)")
        parser.add_argument("--only-unlabelled", action="store_true", help="only pairs without human labels")
        parser.add_argument("--limit", type=int, help="at most this many pairs")
        parser.add_argument("--wait", action="store_true", help="wait for the run to end and print its report")

    def handle(self, *args, slug, judge, only_unlabelled, limit, wait, **options):
        project = Project.objects.filter(slug=slug).first()
        if project is None:
            raise CommandError(f"No project with slug {slug!r}.")
        config = judges_for(project).filter(name=judge).first()
        if config is None:
            names = ", ".join(judges_for(project).values_list("name", flat=True)) or "none"
            raise CommandError(f"No judge named {judge!r} in {slug} (judges: {names}).")
        try:
            run = run_start(project=project, judge=config, user=None, only_unlabelled=only_unlabelled, limit=limit)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        except QueueUnavailable as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Run {run.public_id}: {len(run.pair_ids)} pairs, {run.requests_planned} verdicts planned.")
        if not wait:
            return
        while run.state in JudgeRun.LIVE:
            time.sleep(2)
            run.refresh_from_db()
            self.stdout.write(f"  {run.state}: {run.verdicts_done}/{run.requests_planned}, ${run.cost_usd:.4f}")
        self.stdout.write(f"Run ended: {run.get_state_display()}{': ' + run.error if run.error else ''}")
        self.stdout.write(json.dumps(run_report(run), indent=2))
