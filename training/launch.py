"""How a GPU worker starts a job's child process: ``python -m training.runner <id>`` on one device, or
``accelerate launch`` with a generated config (one process per GPU, data parallel) when the worker sees several.
No torch here: the GPU count comes from CUDA_VISIBLE_DEVICES or ``nvidia-smi -L``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def gpu_count() -> int:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20, check=True).stdout
    except (subprocess.SubprocessError, OSError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def accelerate_config(gpus: int, precision: str) -> str:
    """An accelerate config (YAML) for data-parallel training on ``gpus`` devices of this machine."""
    mixed = {"bf16": "bf16", "fp16": "fp16"}.get(precision, "no")
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


def runner_command(job_id: int, out_dir: Path, *, gpus: int, precision: str = "bf16") -> list[str]:
    if gpus <= 1:
        return [sys.executable, "-m", "training.runner", str(job_id)]
    config = out_dir / "accelerate.yaml"
    config.write_text(accelerate_config(gpus, precision))
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config), "-m", "training.runner",
            str(job_id)]  # fmt: skip
