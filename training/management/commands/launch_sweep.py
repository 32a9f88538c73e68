"""python manage.py launch_sweep <export-id> --base-model NAME --axis "beta: 0.1, 0.5" [--axis ...] [--set key=value]
[--mode grid|random --draws N] [--max-runs N] [--budget-minutes M] [--metric NAME] [--wait]"""

from __future__ import annotations

import time

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from training.jobs.spec import HELP, PRESETS
from training.models import Sweep
from training.services.sweeps import sweep_create
from training.sweeps.compare import METRICS, sweep_comparison
from training.sweeps.points import parse_settings

from .launch_training import admin_named, export_named


class Command(BaseCommand):
    help = "Queue a sweep (several training runs over a grid or random draws of settings) on an export."

    def add_arguments(self, parser):
        parser.add_argument("export", help="the export's id (a UUID, shown on its page and in the API)")
        parser.add_argument("--base-model", help=HELP["base_model"])
        parser.add_argument("--preset", default="dpo-lora", choices=list(PRESETS))
        parser.add_argument("--axis", action="append", default=[], metavar="FIELD: V1, V2",
                            help="a setting and the values to try, e.g. --axis 'beta: 0.05, 0.1, 0.5'")  # fmt: skip
        parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                            help="a setting every run shares, e.g. --set max_steps=200")  # fmt: skip
        parser.add_argument("--mode", default="grid", choices=Sweep.Mode.values)
        parser.add_argument("--draws", type=int, default=0, help="random mode: how many runs")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--max-runs", type=int, default=16)
        parser.add_argument("--budget-minutes", type=float, help="GPU time for all runs")
        parser.add_argument("--metric", default="", choices=["", *METRICS])
        parser.add_argument("--prune-at", type=float, default=0.0,
                            help="early termination: the share of a run's steps where it meets the median")  # fmt: skip
        parser.add_argument("--name", default="")
        parser.add_argument("--user", help="the admin recorded as the sweep's creator")
        parser.add_argument("--wait", action="store_true", help="print the ranking until the sweep ends")

    def handle(self, *args, export, base_model, preset, axis, set, mode, draws, seed, max_runs,  # noqa: A002
               budget_minutes, metric, prune_at, name, user, wait, **options):  # fmt: skip
        try:
            settings_ = parse_settings("\n".join(item.replace("=", ":", 1) for item in set))
        except ValueError as exc:
            raise CommandError(f"--set: {exc}") from None
        if base_model:
            settings_["base_model"] = base_model
        creator, target = admin_named(user), export_named(export)
        try:
            sweep = sweep_create(export=target, user=creator, axes="\n".join(axis), preset=preset, settings_=settings_,
                                 mode=mode, draws=draws, seed=seed, max_runs=max_runs, budget_minutes=budget_minutes,
                                 metric=metric, name=name, prune_at=prune_at)  # fmt: skip
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from None
        self.stdout.write(f"sweep {sweep.public_id} queued: {sweep.jobs.count()} runs")
        if wait:
            while sweep.state == Sweep.State.RUNNING:
                time.sleep(5)
                sweep.refresh_from_db()
            comparison = sweep_comparison(sweep)
            self.stdout.write(f"{sweep.state}; ranked by {comparison['metric_label']}:")
            for row in comparison["rows"]:
                value = row["values"][comparison["metric"]]
                shown = f"{value:.4g}" if value is not None else "—"
                self.stdout.write(f"  {row.get('rank', '-')}. {row['label']}: {row['state']}, {shown}")
