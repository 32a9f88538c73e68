"""GPU benchmark (issue 6): the job path (training.runner, standalone mode) against a plain TRL DPO script with the
usual recipe, on a Llama of SmolLM2-1.7B's shape (random init), LoRA r16, 1,024-token sequences.

    python bench/training_gpu.py --tokenizer DIR --out DIR [--steps 12] [--which both|job|plain]

Both runs train the same pairs for the same number of optimizer steps with 8 pairs per step:
- job path: `python -m training.runner --spec ... --data ... --out ...` with the job defaults (bf16 weights,
  precomputed reference log-probs, micro-batch sized to the GPU, checkpointing only if needed);
- plain: fp32 weights loaded as an older script does, DPOConfig(per_device_train_batch_size=2,
  gradient_accumulation_steps=4, gradient_checkpointing=True, bf16=True), reference forward every step.
Tokens/s counts every sequence token the model trains on (chosen + rejected, 1,024 each) over the trainer's
construction (tokenising, precomputing) plus train(); "train-only" leaves construction out. MFU: model FLOPs per
token 6·N + 12·layers·hidden·seq (the usual convention, recomputation not counted) against 989 TFLOP/s (H100 SXM
dense bf16). Not part of CI; results go to docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEQ = 1024
PAIRS_PER_STEP = 8
PEAK_FLOPS = {"H100": 989e12, "H200": 989e12}

SHAPE = {"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 24, "num_attention_heads": 32,
         "num_key_value_heads": 32, "max_position_embeddings": 8192, "rope_theta": 130000.0,
         "tie_word_embeddings": True, "rms_norm_eps": 1e-5}  # fmt: skip

PLAIN = r"""
import json, sys, time, torch
from datasets import load_from_disk
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from trl import DPOConfig, DPOTrainer
class Times(TrainerCallback):
    stamps = []
    def on_step_end(self, args, state, control, **kw):
        torch.cuda.synchronize(); self.stamps.append(time.monotonic())
model_dir, data_dir, out, steps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
tok = AutoTokenizer.from_pretrained(model_dir)
tok.pad_token = tok.pad_token or tok.eos_token
model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).cuda()
data = load_from_disk(data_dir)["train"].remove_columns(["pair_id", "margin"])
args = DPOConfig(output_dir=out + "/ckpt", per_device_train_batch_size=2, gradient_accumulation_steps=4,
                 gradient_checkpointing=True, bf16=True, max_length=1024, max_steps=steps, learning_rate=5e-5,
                 logging_steps=1, report_to=[], save_strategy="no", beta=0.1)
peft = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM")
torch.cuda.synchronize(); t0 = time.monotonic()
trainer = DPOTrainer(model=model, args=args, train_dataset=data, processing_class=tok, peft_config=peft,
                     callbacks=[Times()])
torch.cuda.synchronize(); t1 = time.monotonic()
trainer.train()
torch.cuda.synchronize(); t2 = time.monotonic()
json.dump({"prepare_seconds": t1 - t0, "train_seconds": t2 - t1, "steps": trainer.state.global_step,
           "peak_gpu_memory_gib": torch.cuda.max_memory_allocated() / 2**30, "step_ends": Times.stamps},
          open(out + "/plain.json", "w"))
"""


def build_model(tokenizer_dir: Path, target: Path, shape: dict | None = None) -> int:
    """A random-init Llama of ``shape`` (default SmolLM2-1.7B's) with the tokenizer, initialised on the GPU directly
    in bf16 (an 8B model never exists in fp32), saved to ``target``; returns its parameter count."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, **(shape or SHAPE))  # fmt: skip
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device("cuda"):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(torch.float32)
    params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    del model
    torch.cuda.empty_cache()
    return params


def build_data(tokenizer_dir: Path, target: Path, pairs: int) -> None:
    from datasets import Dataset, DatasetDict
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    rng = random.Random(0)
    vocab = [t for t in range(1000, min(len(tokenizer), 40000))]

    def text(n: int) -> str:
        return tokenizer.decode([rng.choice(vocab) for _ in range(n)])

    rows = [{"prompt": text(400), "chosen": text(800), "rejected": text(800), "margin": 1.0, "pair_id": i}
            for i in range(pairs)]  # fmt: skip
    DatasetDict({"train": Dataset.from_list(rows)}).save_to_disk(str(target))


VARIANTS = {  # name -> (torch_compile, fused_kernels, compile cache: fresh or shared with the previous variant)
    "job": ("off", "off", "fresh"),
    "job_liger": ("off", "on", "fresh"),
    "job_compiled_cold": ("on", "off", "fresh"),
    "job_compiled_warm": ("on", "off", "shared"),
    "job_fast_cold": ("on", "on", "fresh"),
    "job_fast_warm": ("on", "on", "shared"),
}


def run_job_path(work: Path, model_dir: Path, data_dir: Path, steps: int, tokens: int, env: dict, *,
                 variant: str = "job", spec_extra: dict | None = None) -> dict:  # fmt: skip
    """The runner in standalone mode: the job defaults, with torch.compile of the layers and Liger's kernels on or
    off per variant; the compile cache folder is fresh (a worker's first job of this shape) or the previous one's
    (a later job)."""
    compile_, fused, cache = VARIANTS.get(variant, ("off", "off", "fresh"))
    spec = {"method": "dpo", "base_model": str(model_dir), "lora": True, "lora_r": 16, "lora_alpha": 32,
            "max_length": SEQ, "batch_size": PAIRS_PER_STEP, "max_steps": steps, "learning_rate": 5e-5,
            "eval_pairs": 0, "eval_generations": 0, "length_checks": 0, "torch_compile": compile_,
            "fused_kernels": fused, **(spec_extra or {})}  # fmt: skip
    (work / f"{variant}.json").write_text(json.dumps(spec))
    out = work / variant
    cache_dir = work / "compile-cache"
    if cache == "fresh" and cache_dir.exists():
        shutil.rmtree(cache_dir)
    run_env = {**env, "TORCHINDUCTOR_CACHE_DIR": str(cache_dir)}
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "training.runner", "--spec", str(work / f"{variant}.json"), "--data",
                    str(data_dir), "--out", str(out)], cwd=ROOT, env=run_env, check=True)  # fmt: skip
    wall = time.monotonic() - started
    result = json.loads((out / "result.json").read_text())
    s = result["summary"]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    elapsed = [r["elapsed_s"] for r in rows if "loss" in r]
    total = s["prepare_seconds"] + s["train_seconds"]
    return {
        "hardware": result["hardware"], "prepare_s": s["prepare_seconds"], "train_s": s["train_seconds"],
        "process_wall_s": wall, "steps": s["steps"], "tokens_counted": s["tokens"], "tokens_per_s": tokens / total,
        "tokens_per_s_train_only": tokens / s["train_seconds"],
        "peak_gpu_memory_gib": s.get("peak_gpu_memory_gib"), "versions": result["versions"],
        "steady_step_s": steady(elapsed),
    }  # fmt: skip


def steady(stamps: list[float], skip: int = 4) -> float | None:
    """Mean seconds per step after the first ``skip`` steps (warm-up, compilation)."""
    if len(stamps) <= skip + 1:
        return None
    return (stamps[-1] - stamps[skip]) / (len(stamps) - 1 - skip)


def mfu(tokens_per_s: float, params: int, device: str) -> float:
    flops_per_token = 6 * params + 12 * SHAPE["num_hidden_layers"] * SHAPE["hidden_size"] * SEQ
    peak = next((v for k, v in PEAK_FLOPS.items() if k in device), 989e12)
    return tokens_per_s * flops_per_token / peak


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokenizer", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--variants", default="job", help=f"comma-separated job-path variants: {', '.join(VARIANTS)}")
    parser.add_argument("--plain", action="store_true", help="also run the plain TRL script (the baseline)")
    parser.add_argument("--budget", type=float, default=0, help="skip variants not started within this many seconds")
    args = parser.parse_args()
    import torch

    work = Path("/tmp/arbiter-bench")
    work.mkdir(parents=True, exist_ok=True)
    device = torch.cuda.get_device_name(0)
    model_dir, data_dir = work / "model", work / "data"
    start = time.monotonic()
    params = build_model(args.tokenizer, model_dir)
    build_data(args.tokenizer, data_dir, args.steps * PAIRS_PER_STEP)
    print(f"model ({params / 1e9:.2f} B parameters) and data built in {time.monotonic() - start:.0f} s", flush=True)
    tokens = args.steps * PAIRS_PER_STEP * 2 * SEQ
    report = {"command": " ".join(["bench/training_gpu.py", *sys.argv[1:]]), "device": device, "parameters": params,
              "steps": args.steps, "pairs_per_step": PAIRS_PER_STEP, "seq_len": SEQ, "tokens": tokens}  # fmt: skip
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{os.environ.get('PYTHONPATH', '')}", "TRL_EXPERIMENTAL_SILENCE": "1"}

    def save() -> None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "training_gpu.json").write_text(json.dumps(report, indent=2))

    order = ["plain"] if args.plain else []
    order += [v.strip() for v in args.variants.split(",") if v.strip()]
    for name in order:
        if args.budget and time.monotonic() - start > args.budget:
            report.setdefault("skipped", []).append(name)
            continue
        try:
            if name == "plain":
                report["plain"] = run_plain(work, model_dir, data_dir, args.steps, tokens, env)
            else:
                report[name] = run_job_path(work, model_dir, data_dir, args.steps, tokens, env, variant=name)
            report[name]["mfu"] = mfu(report[name]["tokens_per_s"], params, device)
            report[name]["mfu_train_only"] = mfu(report[name]["tokens_per_s_train_only"], params, device)
        except subprocess.CalledProcessError as exc:
            report[name] = {"error": f"exit status {exc.returncode}"}
        if "plain" in report and "tokens_per_s" in report["plain"] and "tokens_per_s" in report.get(name, {}):
            report[name]["speedup"] = report[name]["tokens_per_s"] / report["plain"]["tokens_per_s"]
            report[name]["speedup_train_only"] = (report[name]["tokens_per_s_train_only"]
                                                  / report["plain"]["tokens_per_s_train_only"])  # fmt: skip
        save()
        print(name, json.dumps(report[name]), flush=True)
    for name in order:
        if name != "plain" and "tokens_per_s" in report.get(name, {}) and "tokens_per_s" in report.get("plain", {}):
            report[name]["speedup"] = report[name]["tokens_per_s"] / report["plain"]["tokens_per_s"]
    save()
    print(json.dumps(report, indent=2))


def run_plain(work: Path, model_dir: Path, data_dir: Path, steps: int, tokens: int, env: dict) -> dict:
    out = work / "plain"
    out.mkdir(exist_ok=True)
    subprocess.run([sys.executable, "-c", PLAIN, str(model_dir), str(data_dir), str(out), str(steps)], cwd=ROOT,
                   env=env, check=True)  # fmt: skip
    p = json.loads((out / "plain.json").read_text())
    total = p["prepare_seconds"] + p["train_seconds"]
    return {
        "prepare_s": p["prepare_seconds"], "train_s": p["train_seconds"], "steps": p["steps"],
        "tokens_per_s": tokens / total, "tokens_per_s_train_only": tokens / p["train_seconds"],
        "peak_gpu_memory_gib": p["peak_gpu_memory_gib"], "steady_step_s": steady(p["step_ends"]),
    }  # fmt: skip


if __name__ == "__main__":
    main()
