"""Where a run reports progress: the job's rows (training.runner with a job id) or files (a standalone run, as the
GPU benchmark uses). In a multi-GPU run only the main process (RANK 0) writes; every process reads the cancel flag."""

from __future__ import annotations

import json
import os
from pathlib import Path


def is_main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


class JobSink:
    def __init__(self, job_id: int):
        self.job_id, self.main = job_id, is_main_process()

    def progress(self, step: int, max_steps: int, stage: str) -> None:
        if self.main:
            from .jobs import job_progress

            job_progress(self.job_id, step, max_steps, stage)

    def hardware(self, info: dict) -> None:
        if self.main:
            from .models import TrainingJob

            TrainingJob.objects.filter(pk=self.job_id).update(hardware=info)

    def metrics(self, step: int, values: dict) -> None:
        if self.main:
            from .jobs import job_metrics

            job_metrics(self.job_id, step, values)

    def cancel_requested(self) -> bool:
        from .jobs import job_cancel_requested

        return job_cancel_requested(self.job_id)


class FileSink:
    """metrics.jsonl and progress.json in the output folder; a file named CANCEL there stops the run."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        self.main = is_main_process()

    def _write(self, name: str, data: dict) -> None:
        if self.main:
            (self.out_dir / name).write_text(json.dumps(data, indent=2))

    def progress(self, step: int, max_steps: int, stage: str) -> None:
        self._write("progress.json", {"step": step, "max_steps": max_steps, "stage": stage})

    def hardware(self, info: dict) -> None:
        self._write("hardware.json", info)

    def metrics(self, step: int, values: dict) -> None:
        if self.main:
            with open(self.out_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps({"step": step, **values}) + "\n")

    def cancel_requested(self) -> bool:
        return (self.out_dir / "CANCEL").exists()
