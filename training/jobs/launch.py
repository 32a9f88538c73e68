"""How a GPU worker starts a job's child process: ``python -m training.runner <id>`` on one device, or
``accelerate launch`` with a generated config (one process per GPU, data parallel) when the worker sees several.
No torch here: the GPUs come from CUDA_VISIBLE_DEVICES and ``nvidia-smi``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def _nvidia_smi(*args: str) -> list[str]:
    """The output lines of nvidia-smi, or [] where there is none (or it fails)."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", *args], capture_output=True, text=True, timeout=20, check=True).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def gpu_count() -> int:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    return sum(1 for line in _nvidia_smi("-L") if line.startswith("GPU "))


def gpu_capability_major() -> int | None:
    """The compute capability (major) of the least capable GPU, as nvidia-smi reports it; None when unknown."""
    majors = []
    for line in _nvidia_smi("--query-gpu=compute_cap", "--format=csv,noheader"):
        try:
            majors.append(int(float(line)))
        except ValueError:
            continue
    return min(majors) if majors else None


def accelerate_config(gpus: int, precision: str) -> str:
    """An accelerate config (YAML) for data-parallel training on ``gpus`` devices of this machine, in the run's
    precision (bf16, fp16 or fp32: the one the runner loads the weights in)."""
    mixed = {"bf16": "bf16", "fp16": "fp16", "fp32": "no"}[precision]
    return "\n".join([
        "compute_environment: LOCAL_MACHINE",
        "distributed_type: MULTI_GPU",
        "machine_rank: 0",
        "num_machines: 1",
        f"num_processes: {gpus}",
        f"mixed_precision: {mixed}",
        "gpu_ids: all",
        "main_training_function: main",
        "rdzv_backend: static",
        "same_network: true",
        "use_cpu: false",
        "",
    ])  # fmt: skip


def runner_command(job_id: int, out_dir: Path, *, gpus: int, precision: str) -> list[str]:
    """The child process's command line; with several GPUs, accelerate launch with a config written to out_dir."""
    if gpus <= 1:
        return [sys.executable, "-m", "training.runner", str(job_id)]
    config = out_dir / "accelerate.yaml"
    config.write_text(accelerate_config(gpus, precision))
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config), "-m", "training.runner",
            str(job_id)]  # fmt: skip
