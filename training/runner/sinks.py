"""Where a run reports progress. A sink has progress(step, max_steps, stage), hardware(info), metrics(step, values),
alarm(alarm), trailing(step, max_steps, values) (a sweep's early termination) and cancel_requested(): the job's rows
(training.runner.run.JobSink) or files (FileSink here: a standalone run, as the GPU benchmark uses; no Django). In a
multi-GPU run only the main process (RANK 0) writes; every process reads the cancel flag.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def is_main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


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

    def alarm(self, alarm: dict) -> None:
        if self.main:
            with open(self.out_dir / "alarms.jsonl", "a") as f:
                f.write(json.dumps(alarm) + "\n")

    def cancel_requested(self) -> bool:
        return (self.out_dir / "CANCEL").exists()

    def trailing(self, step: int, max_steps: int, values: dict):
        return None  # a standalone run belongs to no sweep
