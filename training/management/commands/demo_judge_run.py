"""`python manage.py demo_judge_run`: start the demo judge's first small run, once (`make run` calls this when the
local model server is ready). Does nothing without the demo project (`make demo` creates it)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from annotation.models import Project
from judging.demo import DEMO_JUDGE, demo_judge_run
from judging.models import JudgeConfig
from training.management.commands.demo_setup import DEMO_SLUG


class Command(BaseCommand):
    help = "Start the demo judge's first run on a few pairs (once)."

    def handle(self, *args, **options):
        project = Project.objects.filter(slug=DEMO_SLUG).first()
        judge = JudgeConfig.objects.filter(project=project, name=DEMO_JUDGE).first() if project else None
        if judge is None:
            self.stdout.write("No demo judge here: nothing to run.")
            return
        run = demo_judge_run(judge, project.created_by)
        if run is None:
            self.stdout.write("The demo judge has run before: nothing to do.")
        else:
            self.stdout.write(f"Demo judge run started on {len(run.pair_ids)} pairs ({judge.base_url}).")
