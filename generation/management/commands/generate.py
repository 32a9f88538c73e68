"""`python manage.py generate <slug> --prompts FILE | --prompt-set NAME --generator NAME [plan] [--rater JUDGE]
[--pairs STRATEGY] [--wait]`"""

from __future__ import annotations

import json
import time

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from annotation.models import Project
from generation.imports import PromptsRejected, prompts_import
from generation.models import GenerationRun
from generation.pairing import STRATEGIES
from generation.plan import DEFAULT_PLAN
from generation.selectors import generators_of, prompt_sets_of, run_summary
from generation.services import QueueUnavailable, generation_run_start, pairs_build, pairs_options
from judging.selectors import judges_for


class Command(BaseCommand):
    help = ("Sample candidates for a prompt set from a generator (workers: -Q judge for endpoints, -Q gpu for local "
            "checkpoints); optionally rate them with a judge and build pairs once the run has finished.")  # fmt: skip

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--prompts", help="a file of prompts to import as a new prompt set first")
        parser.add_argument("--prompt-set", required=True, help="the prompt set's name (new with --prompts)")
        parser.add_argument("--generator", required=True, help="the generator's name")
        parser.add_argument("--temperatures", default=",".join(map(str, DEFAULT_PLAN["temperatures"])))
        parser.add_argument("--samples", type=int, default=DEFAULT_PLAN["samples"], help="samples per temperature")
        parser.add_argument("--top-p", type=float, default=DEFAULT_PLAN["top_p"])
        parser.add_argument("--max-tokens", type=int, default=DEFAULT_PLAN["max_tokens"])
        parser.add_argument("--seed", type=int, default=DEFAULT_PLAN["seed"])
        parser.add_argument("--system", default="", help="a system prompt (unless a prompt brings its own)")
        parser.add_argument("--rater", help="a judge's name: scores every candidate 1-10")
        parser.add_argument("--limit", type=int, help="the first this many prompts")
        parser.add_argument("--pairs", choices=STRATEGIES, help="build pairs this way when the run has finished")
        parser.add_argument("--wait", action="store_true", help="wait for the run to end and print its summary")

    def handle(self, *args, slug, prompts, prompt_set, generator, rater, limit, pairs, wait, **options):
        project = Project.objects.filter(slug=slug).first()
        if project is None:
            raise CommandError(f"No project with slug {slug!r}.")
        try:
            if prompts:
                target = prompts_import(project=project, path=prompts, name=prompt_set)
                self.stdout.write(f"Imported {target.prompts_created} prompts ({target.duplicates_skipped} repeats).")
            else:
                target = _named(prompt_sets_of(project), prompt_set, "prompt set")
            source = _named(generators_of(project), generator, "generator")
            judge = _named(judges_for(project), rater, "judge") if rater else None
            plan = {"temperatures": [float(t) for t in options["temperatures"].split(",") if t.strip()],
                    "samples": options["samples"], "top_p": options["top_p"], "max_tokens": options["max_tokens"],
                    "seed": options["seed"], "system": options["system"]}  # fmt: skip
            run = generation_run_start(project=project, prompt_set=target, generator=source, plan=plan, rater=judge,
                                       limit=limit, user=None)  # fmt: skip
        except (PromptsRejected, QueueUnavailable) as exc:
            raise CommandError(str(exc)) from None
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        except ValueError as exc:
            raise CommandError(f"--temperatures: {exc}") from None
        self.stdout.write(f"Run {run.public_id}: {len(run.prompt_ids)} prompts, {run.requests_planned} candidates.")
        if not (wait or pairs):
            return
        while run.state in GenerationRun.LIVE:
            time.sleep(2)
            run.refresh_from_db()
            self.stdout.write(f"  {run.state}: {run.candidates_done}/{run.requests_planned} candidates, "
                              f"{run.ratings_done} ratings, ${run.cost_usd:.4f}")  # fmt: skip
        self.stdout.write(f"Run ended: {run.get_state_display()}{': ' + run.error if run.error else ''}")
        self.stdout.write(json.dumps(run_summary(run), indent=2))
        if pairs and run.state == GenerationRun.State.SUCCEEDED:
            result = pairs_build(prompt_set=target, options=pairs_options({"strategy": pairs}), user=None)
            self.stdout.write(f"{result.created} pairs added ({result.already_in_project} the project had already).")


def _named(queryset, name: str, what: str):
    found = queryset.filter(name=name).first()
    if found is None:
        names = ", ".join(queryset.values_list("name", flat=True)) or "none"
        raise CommandError(f"No {what} named {name!r} ({what}s: {names}).")
    return found
