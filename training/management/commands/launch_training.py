"""python manage.py launch_training <export-id> --base-model NAME [--preset dpo-lora] [--set key=value ...]"""

from __future__ import annotations

import json
import time
import uuid

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from training.jobs.spec import HELP, PRESETS
from training.jobs.supervisor import job_supervise
from training.models import DatasetExport, TrainingJob
from training.services.jobs import job_create


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


class Command(BaseCommand):
    help = "Queue a DPO / KTO / ORPO / SimPO training job on an export for a GPU worker (or run it here)."

    def add_arguments(self, parser):
        parser.add_argument("export", help="the export's id (a UUID, shown on its page and in the API)")
        parser.add_argument("--base-model", help=HELP["base_model"])
        parser.add_argument("--preset", default="dpo-lora", choices=list(PRESETS))
        parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                            help="any JobSpec setting (training/jobs/spec.py), e.g. --set beta=0.2")  # fmt: skip
        parser.add_argument("--name", default="")
        parser.add_argument("--user", help="the admin recorded as the job's creator")
        parser.add_argument(
            "--run-here", action="store_true", help="run the job from this process instead of queueing it"
        )
        parser.add_argument("--wait", action="store_true", help="print progress until the job ends")

    def handle(self, *args, export, base_model, preset, set, name, user, run_here, wait, **options):  # noqa: A002
        settings_ = {}
        for item in set:
            key, sep, value = item.partition("=")
            if not sep:
                raise CommandError(f"--set {item!r}: expected KEY=VALUE")
            settings_[key.strip()] = _value(value.strip())
        if base_model:
            settings_["base_model"] = base_model
        creator, target = admin_named(user), export_named(export)
        try:
            job = job_create(export=target, user=creator, preset=preset, settings_=settings_, name=name)
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from None
        self.stdout.write(f"job {job.public_id} queued ({job.spec['method']} on {job.spec['base_model']})")
        if run_here:
            job_supervise(job.pk)
        if wait or run_here:
            job = self._follow(job)
            if job.state not in TrainingJob.HAS_MODEL:
                raise CommandError(f"job {job.public_id} {job.state}: {job.error}")

    def _follow(self, job: TrainingJob) -> TrainingJob:
        shown = None
        while True:
            job.refresh_from_db()
            line = f"{job.state} · {job.stage} · step {job.step}/{job.max_steps}"
            if line != shown:
                self.stdout.write(line)
                shown = line
            if job.state not in TrainingJob.LIVE:
                if job.evaluation:
                    ev = job.evaluation
                    if ev.get("kind") == "reward":
                        longer = ev["length_baseline"]["accuracy"]
                        self.stdout.write(f"held-out accuracy: {ev['accuracy']}, picking the longer {longer} "
                                          f"(n={ev['pairs']})")  # fmt: skip
                    else:
                        base, tuned = ev["base"]["accuracy"], ev["tuned"]["accuracy"]
                        self.stdout.write(f"held-out accuracy: base {base}, tuned {tuned} (n={ev['pairs']})")
                return job
            time.sleep(2)


def admin_named(username: str | None):
    """The admin a command records as the creator (None when not given)."""
    if not username:
        return None
    creator = get_user_model().objects.filter(username=username, is_staff=True).first()
    if creator is None:
        raise CommandError(f"--user {username}: no such admin")
    return creator


def export_named(public_id: str) -> DatasetExport:
    target = DatasetExport.objects.filter(public_id=public_id).first() if _is_uuid(public_id) else None
    if target is None:
        raise CommandError(f"No export {public_id}.")
    return target


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True
