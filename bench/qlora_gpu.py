"""GPU check (issue 20): a QLoRA DPO job on a model that does not fit the GPU in bf16, through the job path.

    python bench/qlora_gpu.py --tokenizer DIR --out DIR [--cap-gib 16] [--steps 8]

Builds a random-init Llama of Llama-3.1-8B's layer shape (32 layers, hidden 4096, MLP 14336, GQA 32/8 heads) with
SmolLM2's tokenizer (49,152 tokens, so 7.4 B parameters), saves it in bf16 (13.8 GiB), and runs the runner in
standalone mode with the worker's memory cap (ARBITER_GPU_MEMORY_GIB, enforced with
torch.cuda.set_per_process_memory_fraction: the card behaves as a GPU of that size) and ``quantization: auto``.
The memory estimator must refuse bf16 LoRA (and a bf16 copy plus a reference copy is 27.5 GiB) and pick QLoRA;
the job then trains DPO with LoRA r64 on 8 pairs of 1,024 tokens per step. Not part of CI; results go to
docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.training_gpu import build_data, build_model  # noqa: E402
from training.jobs.memory import DoesNotFit, ModelShape, choose  # noqa: E402

SHAPE = {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
         "num_key_value_heads": 8, "max_position_embeddings": 8192, "rope_theta": 500000.0,
         "tie_word_embeddings": False, "rms_norm_eps": 1e-5}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokenizer", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cap-gib", type=float, default=16.0)
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()
    work = Path("/tmp/arbiter-qlora")
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    model_dir, data_dir = work / "model", work / "data"
    params = build_model(args.tokenizer, model_dir, SHAPE)
    build_data(args.tokenizer, data_dir, args.steps * 8)
    report = {"command": " ".join(["bench/qlora_gpu.py", *sys.argv[1:]]), "parameters": params,
              "build_s": time.monotonic() - started, "cap_gib": args.cap_gib}  # fmt: skip
    shape = ModelShape.from_config(json.loads((model_dir / "config.json").read_text()))
    for quantization in ("none", "auto"):  # what the estimator says before the job starts
        try:
            plan = choose(shape, method="dpo", lora=True, quantization=quantization, sharding="auto",
                          checkpointing="auto", max_length=1024, lora_r=64, have_gib=args.cap_gib)  # fmt: skip
            report[f"estimate_{quantization}"] = plan.as_dict()
        except DoesNotFit as exc:
            report[f"estimate_{quantization}"] = {"refused": str(exc)}
    spec = {"method": "dpo", "base_model": str(model_dir), "quantization": "auto", "lora_r": 64, "lora_alpha": 128,
            "max_length": 1024, "batch_size": 8, "max_steps": args.steps, "learning_rate": 5e-5, "eval_pairs": 0,
            "eval_generations": 0, "length_checks": 0}  # fmt: skip
    (work / "spec.json").write_text(json.dumps(spec))
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{os.environ.get('PYTHONPATH', '')}", "TRL_EXPERIMENTAL_SILENCE": "1",
           "ARBITER_GPU_MEMORY_GIB": str(args.cap_gib)}  # fmt: skip
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "training.runner", "--spec", str(work / "spec.json"), "--data",
                           str(data_dir), "--out", str(work / "job")], cwd=ROOT, env=env)  # fmt: skip
    report["job_wall_s"] = time.monotonic() - t0
    report["exit"] = proc.returncode
    result = work / "job" / "result.json"
    if result.is_file():
        data = json.loads(result.read_text())
        report |= {k: data[k] for k in ("state", "summary", "hardware", "versions")}
        s = data["summary"]
        report["tokens_per_s"] = args.steps * 8 * 2 * 1024 / (s["prepare_seconds"] + s["train_seconds"])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "qlora_gpu.json").write_text(json.dumps(report, indent=2, default=str))
    print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
