"""How a GPU worker starts a job's child process: ``python -m training.runner <id>`` on one device, or
``accelerate launch`` with a generated config when the job has several processes: one per GPU, data parallel or
sharded (FSDP), on this machine or on several.
No torch here: the GPUs come from CUDA_VISIBLE_DEVICES and ``nvidia-smi``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
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


def gpu_memory_gib() -> float | None:
    """The memory of the smallest GPU, as nvidia-smi reports it (GiB); None when unknown."""
    sizes = []
    for line in _nvidia_smi("--query-gpu=memory.total", "--format=csv,noheader,nounits"):
        try:
            sizes.append(float(line) / 1024)
        except ValueError:
            continue
    return min(sizes) if sizes else None


@dataclass(frozen=True)
class Cluster:
    """Where a job's processes run: this machine's GPUs, and for a multi-node job every node's (worker settings
    TRAINING_NUM_MACHINES, TRAINING_MACHINE_RANK, TRAINING_MAIN_ADDRESS, TRAINING_MAIN_PORT; docs/TRAINING.md)."""

    gpus: int = 1
    machines: int = 1
    rank: int = 0
    main_address: str = ""
    main_port: int = 29500

    @property
    def processes(self) -> int:
        return max(self.gpus, 1) * self.machines

    @property
    def distributed(self) -> bool:
        return self.processes > 1


# The decoder layer classes FSDP wraps one by one come from the model (transformers' _no_split_modules), so one
# config serves every architecture.
FSDP = {
    "fsdp_version": 2,
    "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
    "fsdp_reshard_after_forward": True,  # FULL_SHARD: weights, gradients and optimizer state all sharded
    "fsdp_offload_params": False,
    "fsdp_state_dict_type": "FULL_STATE_DICT",  # save_model writes one ordinary checkpoint
    "fsdp_cpu_ram_efficient_loading": True,  # rank 0 reads the weights, the others receive their shards
    "fsdp_activation_checkpointing": False,  # the trainer's own setting decides
}


def accelerate_config(gpus: int, precision: str, *, strategy: str = "", cluster: Cluster | None = None) -> str:
    """An accelerate config for ``gpus`` devices per machine, in the run's precision (bf16, fp16 or fp32: the one
    the runner loads the weights in): data parallel, or for a sharded plan (``fsdp``) PyTorch FSDP; on several
    machines with the cluster's rank and main address. JSON, which accelerate reads as it reads YAML."""
    cluster = cluster or Cluster(gpus=gpus)
    mixed = {"bf16": "bf16", "fp16": "fp16", "fp32": "no"}[precision]
    config: dict = {
        "compute_environment": "LOCAL_MACHINE",
        "distributed_type": "FSDP" if strategy == "fsdp" else "MULTI_GPU",
        "machine_rank": cluster.rank,
        "num_machines": cluster.machines,
        "num_processes": max(gpus, 1) * cluster.machines,
        "mixed_precision": mixed,
        "gpu_ids": "all",
        "main_training_function": "main",
        "rdzv_backend": "static",
        "same_network": True,
        "use_cpu": False,
    }
    if cluster.machines > 1:
        config |= {"main_process_ip": cluster.main_address, "main_process_port": cluster.main_port}
    if strategy == "fsdp":
        config["fsdp_config"] = dict(FSDP)
    return json.dumps(config, indent=2) + "\n"


def runner_command(job_id: int, out_dir: Path, *, gpus: int, precision: str, strategy: str = "",
                   cluster: Cluster | None = None) -> list[str]:  # fmt: skip
    """The child process's command line; with several processes (GPUs here or other nodes), accelerate launch with
    a config written to out_dir (one per node rank, so nodes sharing the folder do not overwrite each other's)."""
    cluster = cluster or Cluster(gpus=gpus)
    if not cluster.distributed:
        return [sys.executable, "-m", "training.runner", str(job_id)]
    config = out_dir / ("accelerate.json" if cluster.machines == 1 else f"accelerate-node{cluster.rank}.json")
    config.write_text(accelerate_config(gpus, precision, strategy=strategy, cluster=cluster))
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config), "-m", "training.runner",
            str(job_id)]  # fmt: skip
