"""`make run`'s process handling, for real: the devserver command (what `make run` ends with) in a folder of its own
starts the web server, a worker that takes a task, and the local model server; Ctrl-C (SIGINT) stops all of it and
leaves no process behind."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings

from tests.services import require
from tests.worker import free_port, http_ok, wait_for

ROOT = Path(__file__).resolve().parents[2]


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _descendants(pid: int) -> dict[int, tuple[str, str]]:
    """Every process below ``pid``: pid -> (start time, command line), so a reused pid is not mistaken for it."""
    tree, out, todo = _children(), {}, [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            try:
                start = (Path("/proc") / str(child) / "stat").read_text().rsplit(")", 1)[1].split()[19]
                cmd = (Path("/proc") / str(child) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except (OSError, IndexError):
                continue
            out[child] = (start, cmd)
            todo.append(child)
    return out


def _still_running(pid: int, start: str) -> bool:
    try:
        fields = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[19] == start and fields[0] != "Z"


def test_make_run_starts_everything_and_ctrl_c_leaves_nothing(tmp_path):
    require(importlib.util.find_spec("llama_cpp") is not None, "llama-cpp-python is not installed: make judge-server")
    require(settings.LOCAL_MODEL_PATH.exists(), f"{settings.LOCAL_MODEL_PATH} is missing: make judge-server")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL")}
    model_port, web_port = free_port(), free_port()
    env.update(ARBITER_VAR_DIR=str(tmp_path / "var"), LOCAL_MODEL_PORT=str(model_port), PYTHONUNBUFFERED="1")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    log_path = tmp_path / "devserver.log"
    with open(log_path, "w") as log:
        devserver = subprocess.Popen([sys.executable, "manage.py", "devserver", "--addr", f"127.0.0.1:{web_port}"],
                                     cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        assert wait_for(lambda: http_ok(f"http://127.0.0.1:{web_port}/healthz"), timeout=90), log_path.read_text()
        state = tmp_path / "var" / "local-model" / "state.json"
        ready = wait_for(lambda: state.exists() and json.loads(state.read_text())["state"] in ("ready", "failed"),
                         timeout=300)  # fmt: skip
        model_log = tmp_path / "var" / "local-model" / "local-model.log"
        assert ready and json.loads(state.read_text())["state"] == "ready", model_log.read_text()[-3000:]
        assert http_ok(f"http://127.0.0.1:{model_port}/v1/models")
        # the worker takes a task sent from another process through the filesystem broker under this folder
        send = "from training.tasks import jobs_reap_task; jobs_reap_task.apply_async(task_id='devserver-test')"
        subprocess.run([sys.executable, "manage.py", "shell", "-c", send], cwd=ROOT, env=env, check=True)
        done = "Task training.tasks.jobs_reap_task[devserver-test] succeeded"
        assert wait_for(lambda: done in log_path.read_text(), timeout=60), log_path.read_text()[-3000:]
        started = _descendants(devserver.pid)
        commands = " ".join(cmd for _, cmd in started.values())
        assert "runserver" in commands and "celery" in commands and "llama_cpp.server" in commands
    finally:
        devserver.send_signal(signal.SIGINT)  # Ctrl-C
        devserver.wait(timeout=60)
    deadline = time.monotonic() + 5
    left = {pid: cmd for pid, (start, cmd) in started.items() if _still_running(pid, start)}
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = {pid: cmd for pid, (start, cmd) in started.items() if _still_running(pid, start)}
    assert not left, left
    assert json.loads(state.read_text())["state"] == "stopped"
