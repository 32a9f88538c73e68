"""`make run`: the web server and a Celery worker in one command; Ctrl-C stops both."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Run the development web server and a Celery worker together."

    def add_arguments(self, parser):
        parser.add_argument("--addr", default="127.0.0.1:8000")

    def handle(self, *args, addr, **options):
        procs = [
            subprocess.Popen([sys.executable, "manage.py", "runserver", addr, "--noreload"]),
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "config",
                    "worker",
                    "-Q",
                    "default,judge,gpu",
                    "--beat",
                    "--schedule",
                    str(settings.VAR_DIR / "celerybeat-schedule"),
                    "--concurrency",
                    "1",
                    "--loglevel",
                    "INFO",
                ]  # fmt: skip
            ),
        ]
        self.stdout.write(f"Arbiter on http://{addr}/ with a Celery worker. Ctrl-C stops both.")
        died = []
        try:
            while not died:
                died = [p for p in procs if p.poll() is not None]
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGINT)
            deadline = time.time() + 10
            for p in procs:
                try:
                    p.wait(timeout=max(deadline - time.time(), 0.1))
                except subprocess.TimeoutExpired:
                    p.kill()
        for p in died:  # one of them stopped on its own: say which, so the other's shutdown is not a mystery
            self.stderr.write(f"Stopped because `{' '.join(p.args[1:4])}` exited with code {p.returncode}.")
