"""The worker's side of a running job: claim it, start ``python -m training.runner`` in a child process, and watch
it: heartbeat and log tail every two seconds, termination if a cancel is not honoured in time, and a failure record
if the child dies. A killed worker takes its child with it (PR_SET_PDEATHSIG), so no GPU is left busy."""

from __future__ import annotations

import ctypes
import importlib.util
import json
import logging
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from celery import current_app
from django.conf import settings
from django.utils import timezone

from config.logs import file_tail

from ..models import TrainingJob
from ..storage import job_dir
from .launch import Cluster, gpu_capability_major, gpu_count, gpu_memory_gib, runner_command
from .lifecycle import job_claim, job_fail, job_finish, job_heartbeat
from .memory import DoesNotFit, plan_job, read_shape
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


def worker_cluster(gpus: int) -> Cluster:
    """This worker's part of a job: its GPUs, and with TRAINING_NUM_MACHINES > 1 its node rank and the main node."""
    return Cluster(gpus=gpus, machines=settings.TRAINING_NUM_MACHINES, rank=settings.TRAINING_MACHINE_RANK,
                   main_address=settings.TRAINING_MAIN_ADDRESS, main_port=settings.TRAINING_MAIN_PORT)  # fmt: skip


def worker_memory_gib() -> float | None:
    """GPU memory a job may use here: the smallest card's, or TRAINING_GPU_MEMORY_GIB where that is lower."""
    card, cap = gpu_memory_gib(), settings.TRAINING_GPU_MEMORY_GIB or None
    return min(x for x in (card, cap) if x) if (card or cap) else None


def job_plan(job: TrainingJob, cluster: Cluster) -> dict:
    """The memory plan on this worker (the real GPU size and count, the model's config fetched if need be).
    Raises DoesNotFit with the numbers."""
    spec = JobSpec.from_dict(job.spec)
    shape = read_shape(spec.base_model, fetch=True)
    quantizable = importlib.util.find_spec("bitsandbytes") is not None
    memory = worker_memory_gib()
    return plan_job(spec, shape, gpus=cluster.processes, have_gib=memory, quantization_available=quantizable)


def job_command(job: TrainingJob, out_dir: Path, *, gpus: int, plan: dict | None = None,
                cluster: Cluster | None = None) -> list[str]:  # fmt: skip
    """The runner's command line for this job on this worker: with several processes, an accelerate config in the
    job's own precision (its spec's, or what "auto" resolves to on these GPUs), sharded when the plan says so."""
    cluster = cluster or Cluster(gpus=gpus)
    precision = "fp32"
    if cluster.distributed:
        spec = JobSpec.from_dict(job.spec)
        precision = resolve_precision(spec.precision, cuda=True, capability_major=gpu_capability_major())
    strategy = (plan or {}).get("strategy", "")
    return runner_command(job.pk, out_dir, gpus=gpus, precision=precision, strategy=strategy, cluster=cluster)


def _start(command: list[str], log_path: Path, plan: dict) -> subprocess.Popen:
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "TORCHINDUCTOR_CACHE_DIR": str(settings.TRAINING_COMPILE_CACHE),
    }
    if plan.get("checked"):  # else the runner plans with the model's config once it has it
        env["ARBITER_MEMORY_PLAN"] = json.dumps(plan)
    if settings.TRAINING_GPU_MEMORY_GIB:
        env["ARBITER_GPU_MEMORY_GIB"] = str(settings.TRAINING_GPU_MEMORY_GIB)
    with open(log_path, "ab") as log:
        return subprocess.Popen(command, cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
                                preexec_fn=_die_with_parent)  # fmt: skip


def job_supervise(job_id: int) -> None:
    """Run the job if it is still queued (a redelivered task finds it claimed, or reaps it if its worker died)."""
    job = job_claim(job_id, f"{socket.gethostname()}:{os.getpid()}")
    if job is None:
        return
    out_dir = job_dir(job)
    out_dir.mkdir(parents=True, exist_ok=True)
    log_path = out_dir / "runner.log"
    cluster = worker_cluster(gpu_count())
    try:
        plan = job_plan(job, cluster) | {"checked_on": "worker"}
    except DoesNotFit as exc:
        job_fail(job.pk, str(exc))
        return
    TrainingJob.objects.filter(pk=job.pk).update(memory_plan=plan)
    command = job_command(job, out_dir, gpus=cluster.gpus, plan=plan, cluster=cluster)
    for rank in range(1, cluster.machines):  # the other nodes start their part (by name: tasks imports this module)
        current_app.send_task("training.tasks.job_join_task", args=(job.pk, rank, plan), queue=f"gpu-node{rank}")
    proc = _start(command, log_path, plan)
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


def job_join(job_id: int, rank: int, plan: dict) -> None:
    """A multi-node job's part on node ``rank`` (this worker's TRAINING_MACHINE_RANK): the same runner under
    accelerate with this node's rank, until it ends. The rank-0 worker owns the job's state (heartbeat, result);
    this node only logs (runner-node<rank>.log) and stops when the job is no longer running."""
    job = TrainingJob.objects.filter(pk=job_id, state=TrainingJob.State.RUNNING).first()
    if job is None or rank != settings.TRAINING_MACHINE_RANK:
        logger.warning("job %s node %s: not running here (job ended, or this worker has rank %s)", job_id, rank,
                       settings.TRAINING_MACHINE_RANK)  # fmt: skip
        return
    out_dir = job_dir(job)
    out_dir.mkdir(parents=True, exist_ok=True)
    cluster = worker_cluster(gpu_count())
    proc = _start(job_command(job, out_dir, gpus=cluster.gpus, plan=plan, cluster=cluster),
                  out_dir / f"runner-node{rank}.log", plan)  # fmt: skip
    while proc.poll() is None:
        time.sleep(MONITOR_INTERVAL_S)
        if not TrainingJob.objects.filter(pk=job_id, state=TrainingJob.State.RUNNING).exists():
            try:
                proc.wait(timeout=60)  # rank 0 ended the job: the process group breaks up on its own
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
            break
