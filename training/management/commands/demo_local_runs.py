"""`python manage.py demo_local_runs`: start the demo's first runs on the local model, once each (`make run` calls
this when the local model server is ready): the judge on a few pairs, the reward model on every pair (on the gpu
worker), and the generator on a few prompts rated by the judge. Does nothing without the demo project (`make demo`
creates it)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from annotation.models import Project
from generation.demo import DEMO_GENERATOR, DEMO_PROMPT_SET, demo_generation_run
from generation.models import Generator, PromptSet
from judging.demo import DEMO_JUDGE, DEMO_REWARD_MODEL, demo_judge_run
from judging.models import JudgeConfig
from judging.services import run_start
from training.management.commands.demo_setup import DEMO_SLUG


class Command(BaseCommand):
    help = "Start the demo judge's first run on a few pairs and the demo generator's first run (once each)."

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
        reward_model = JudgeConfig.objects.filter(project=project, name=DEMO_REWARD_MODEL).first()
        if reward_model is not None and not reward_model.runs.exists():
            scored = run_start(project=project, judge=reward_model, user=project.created_by)
            self.stdout.write(f"Demo reward model run started on {len(scored.pair_ids)} pairs (gpu worker).")
        generator = Generator.objects.filter(project=project, name=DEMO_GENERATOR).first()
        prompt_set = PromptSet.objects.filter(project=project, name=DEMO_PROMPT_SET).first()
        if generator is None or prompt_set is None:
            return
        generation = demo_generation_run(generator, prompt_set, judge, project.created_by)
        if generation is None:
            self.stdout.write("The demo generator has run before: nothing to do.")
        else:
            self.stdout.write(f"Demo generation run started on {len(generation.prompt_ids)} prompts, rated by "
                              f"{judge.name}.")  # fmt: skip
