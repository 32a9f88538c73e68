"""A training run without the database: a spec and an HF datasets folder in, progress and the result as files in
the output folder (``python -m training.runner --spec spec.json --data DIR --out DIR``; the GPU benchmark uses it).
No Django here."""

from __future__ import annotations

import json
from pathlib import Path

from judging.checkpoints import resolve_base_model

from ..jobs.spec import JobSpec
from .sinks import FileSink
from .trl_run import train


def run_standalone(spec_path: Path, data_dir: Path, out_dir: Path) -> int:
    spec = JobSpec.from_dict(json.loads(spec_path.read_text()))
    sink = FileSink(out_dir)
    model_path = resolve_base_model(spec.base_model, out_dir / "model-cache")
    result = train(spec, data_dir, model_path, out_dir, sink, context={"export": str(data_dir)})
    keys = ("state", "summary", "hardware", "evaluation", "versions", "alarms", "stop_reason")
    summary = {k: result[k] for k in keys}
    (out_dir / "result.json").write_text(json.dumps(summary, indent=2, default=str))
    return 0
