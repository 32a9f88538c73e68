"""python manage.py launch_campaign <project> --name NAME --prompt-set NAME --recipe NAME --judge NAME
--base-model NAME --user ADMIN
[--rounds 3 --per-round 100 --eval-prompts 50 --samples 4 --temperature 1.0 --max-tokens 256 --strategy best_worst]
[--people-k K --people-minutes M] [--preset dpo-lora --set key=value ...] [--reference initial|previous]
[--stop-win-rate X --stop-kl X --budget-usd X] [--wait]"""

from __future__ import annotations

import time

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError

from annotation.models import Project
from generation.models import PromptSet
from generation.pairing import STRATEGIES
from judging.models import JudgeConfig
from training.campaigns.control import campaign_create
from training.campaigns.report import campaign_report
from training.jobs.spec import HELP, PRESETS
from training.models import Campaign, CurationRecipe
from training.sweeps.points import parse_settings

from .launch_training import admin_named


class Command(BaseCommand):
    help = "Start an iterative DPO campaign: rounds of generate, rate, pair, curate, train and evaluate."

    def add_arguments(self, parser):
        parser.add_argument("project", help="the project's slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--prompt-set", required=True, help="the prompt pool's name")
        parser.add_argument("--eval-prompt-set", default="", help="held-out prompts (default: the pool's last)")
        parser.add_argument("--recipe", required=True, help="a curation recipe's name (its latest version)")
        parser.add_argument("--judge", required=True, help="the judge's name (the project's or a shared one)")
        parser.add_argument("--base-model", required=True, help=HELP["base_model"])
        parser.add_argument("--user", required=True, help="the admin recorded as the campaign's creator")
        parser.add_argument("--rounds", type=int, default=3)
        parser.add_argument("--per-round", type=int, default=100)
        parser.add_argument("--eval-prompts", type=int, default=50)
        parser.add_argument("--reuse-prompts", action="store_true")
        parser.add_argument("--samples", type=int, default=4)
        parser.add_argument("--temperature", type=float, default=1.0)
        parser.add_argument("--max-tokens", type=int, default=256)
        parser.add_argument("--strategy", default="best_worst", choices=STRATEGIES)
        parser.add_argument("--min-margin", type=float, default=1.0)
        parser.add_argument("--people-k", type=int, default=0)
        parser.add_argument("--people-minutes", type=float)
        parser.add_argument("--preset", default="dpo-lora", choices=list(PRESETS))
        parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                            help="a training setting every round shares, e.g. --set max_steps=200")  # fmt: skip
        parser.add_argument("--reference", default="initial", choices=Campaign.Reference.values)
        parser.add_argument("--stop-win-rate", type=float)
        parser.add_argument("--stop-kl", type=float)
        parser.add_argument("--budget-usd", type=float)
        parser.add_argument("--wait", action="store_true", help="print each round's report until the campaign ends")

    def handle(self, *args, **o):
        project = Project.objects.filter(slug=o["project"]).first()
        if project is None:
            raise CommandError(f"No project {o['project']}.")
        try:
            settings_ = parse_settings("\n".join(item.replace("=", ":", 1) for item in o["set"]))
        except ValueError as exc:
            raise CommandError(f"--set: {exc}") from None
        sets = PromptSet.objects.filter(project=project)
        prompt_set = sets.filter(name=o["prompt_set"]).first()
        eval_set = sets.filter(name=o["eval_prompt_set"]).first() if o["eval_prompt_set"] else None
        recipe = CurationRecipe.objects.filter(project=project, name=o["recipe"]).order_by("-version").first()
        judge = (JudgeConfig.objects.filter(project=project, name=o["judge"]).first()
                 or JudgeConfig.objects.filter(project__isnull=True, name=o["judge"]).first())  # fmt: skip
        for flag, found in (("--prompt-set", prompt_set), ("--recipe", recipe), ("--judge", judge),
                            ("--eval-prompt-set", eval_set if o["eval_prompt_set"] else True)):  # fmt: skip
            if found is None:
                raise CommandError(f"{flag}: none of that name in {project.slug}")
        try:
            campaign = campaign_create(
                project=project, user=admin_named(o["user"]), name=o["name"], base_model=o["base_model"],
                prompt_set=prompt_set, recipe=recipe, rounds=o["rounds"], per_round=o["per_round"], judge=judge,
                eval_prompt_set=eval_set, eval_prompts=o["eval_prompts"], reuse_prompts=o["reuse_prompts"],
                plan={"temperatures": [o["temperature"]], "samples": o["samples"], "max_tokens": o["max_tokens"]},
                pairing={"strategy": o["strategy"], "min_margin": o["min_margin"]}, people_k=o["people_k"],
                people_minutes=o["people_minutes"], preset=o["preset"], settings_=settings_, reference=o["reference"],
                stop_win_rate=o["stop_win_rate"], stop_kl=o["stop_kl"], budget_usd=o["budget_usd"],
            )  # fmt: skip
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from None
        except PermissionDenied as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"campaign {campaign.public_id} started: {campaign.rounds} rounds")
        if not o["wait"]:
            return
        shown = 0
        while True:
            campaign.refresh_from_db()
            rows = campaign_report(campaign)["rows"]
            for row in rows[shown:]:
                base = row.get("vs_base") or {}
                previous = row.get("vs_previous") or {}
                self.stdout.write(f"round {row['round']}: win rate vs base {_pct(base.get('win_rate'))}, LC "
                                  f"{_pct(base.get('lc_win_rate'))}, vs previous {_pct(previous.get('win_rate'))}, "
                                  f"mean answer {row.get('mean_answer_chars') or 0:.0f} chars")  # fmt: skip
            shown = len(rows)
            if campaign.state != Campaign.State.RUNNING:
                break
            time.sleep(5)
        self.stdout.write(f"{campaign.get_state_display()}: {campaign.stop_reason or campaign.error or campaign.stage}")


def _pct(value) -> str:
    return "—" if value is None else f"{value:.0%}"
