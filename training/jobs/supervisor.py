"""The worker's side of a running job: claim it, start ``python -m training.runner`` in a child process, and watch
it: heartbeat and log tail every two seconds, termination if a cancel is not honoured in time, and a failure record
if the child dies. A killed worker takes its child with it (PR_SET_PDEATHSIG), so no GPU is left busy."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from config.logs import file_tail

from ..models import TrainingJob
from ..storage import job_dir
from .launch import gpu_capability_major, gpu_count, runner_command
from .lifecycle import job_claim, job_fail, job_finish, job_heartbeat
from .spec import JobSpec, resolve_precision

logger = logging.getLogger(__name__)

MONITOR_INTERVAL_S = 2.0
CANCEL_GRACE_S = 300  # a cancelled run that has not stopped at a step boundary by then is terminated
LOG_TAIL_CHARS = 6000


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """The runner gets SIGKILL if the worker process dies, so a killed worker never leaves a GPU busy."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass
    os.setpgrp()


def log_tail(path: Path) -> str:
    """The last LOG_TAIL_CHARS of the runner's log ("" before it exists)."""
    return file_tail(path, LOG_TAIL_CHARS)


def job_command(job: TrainingJob, out_dir: Path, *, gpus: int) -> list[str]:
    """The runner's command line for this job on this worker: with several GPUs, an accelerate config in the job's
    own precision (its spec's, or what "auto" resolves to on these GPUs)."""
    precision = "fp32"
    if gpus > 1:
        spec = JobSpec.from_dict(job.spec)
        precision = resolve_precision(spec.precision, cuda=True, capability_major=gpu_capability_major())
    return runner_command(job.pk, out_dir, gpus=gpus, precision=precision)


def job_supervise(job_id: int) -> None:
    """Run the job if it is still queued (a redelivered task finds it claimed, or reaps it if its worker died)."""
    job = job_claim(job_id, f"{socket.gethostname()}:{os.getpid()}")
    if job is None:
        return
    out_dir = job_dir(job)
    out_dir.mkdir(parents=True, exist_ok=True)
    log_path = out_dir / "runner.log"
    command = job_command(job, out_dir, gpus=gpu_count())
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(command, cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
                                preexec_fn=_die_with_parent)  # fmt: skip
        terminated_for_cancel = False
        while proc.poll() is None:
            time.sleep(MONITOR_INTERVAL_S)
            if not job_heartbeat(job.pk, log_tail=log_tail(log_path)):
                break  # the job ended (the runner finished it) or someone else failed it
            requested = TrainingJob.objects.filter(pk=job.pk).values_list("cancel_requested_at", flat=True).first()
            overdue = requested and (timezone.now() - requested).total_seconds() > CANCEL_GRACE_S
            if overdue and not terminated_for_cancel and proc.poll() is None:  # one SIGTERM, then wait for the exit
                logger.warning("training job %s ignored its cancel for %s s: terminating", job.pk, CANCEL_GRACE_S)
                os.killpg(proc.pid, signal.SIGTERM)
                terminated_for_cancel = True
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            code = proc.wait()
    tail = log_tail(log_path)
    TrainingJob.objects.filter(pk=job.pk).update(log_tail=tail)
    if terminated_for_cancel:
        job_finish(job.pk, TrainingJob.State.CANCELLED)
    elif code != 0:
        how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
        last = next((line for line in reversed(tail.splitlines()) if line.strip()), "")
        job_fail(job.pk, f"The training process {how}. Last log line: {last[:500]}")
    else:
        job_fail(job.pk, "The training process exited without recording a result.")  # only if still running
