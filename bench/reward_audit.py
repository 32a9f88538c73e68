"""Reward models on real data: train one from AlpacaEval preference pairs and audit it, beside an untrained one and
the two baselines every scorer must beat, with the project's own tools.

    .venv/bin/python bench/reward_audit.py [--pairs 400] [--steps 40] [--max-length 512] [--lr 5e-5]
    .venv/bin/python bench/reward_audit.py --baselines-only    # the file's length and position baselines only

Everything runs through the app, on this machine (CPU unless a GPU is there), with a real gpu-queue worker:
1. the first --pairs records of ../shared/data/alpacaeval_pairs.jsonl are imported into a fresh project; their two
   GPT-4-turbo judgements become two external annotators' labels;
2. a curated export: the pairs both labels agree on and that are not ties, a fifth of the prompts held out;
3. a reward-model job (the reward-lora preset: TRL RewardTrainer, LoRA on SmolLM2-135M-Instruct with a new score
   head), --steps optimizer steps of 8 pairs; its runner evaluation on the test split;
4. the job as a scorer ("Use as a scorer"), and SmolLM2 with an untrained head as a second one; each scores every
   imported pair on the worker;
5. judging.audit.scorer_audit for both: accuracy against the GPT-4 majority on the pairs the trained model did not
   see, beside "pick the longer" and "always A", and kappa.
Prints JSON and writes bench/out/reward_audit.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from _env import machine_info
from alignment import DATA, start_worker, wait
from judge import bench_setup

DB = "arbiter_bench_reward"
BROKER = "redis://127.0.0.1:6379/12"


def file_baselines() -> dict:
    """What "pick the longer" and "always A" score against the GPT-4 labels over the whole file (pairs whose two
    labels agree and are not ties; equal lengths count half), overall and per source: the bar any scorer must
    clear on this data. Plain Python over the file, no database."""
    from collections import defaultdict

    from statsmodels.stats.proportion import proportion_confint

    rows = defaultdict(lambda: [0.0, 0, 0])  # source -> [longer hits, always-A hits, n]
    for line in DATA.read_text().splitlines():
        record = json.loads(line)
        labels = {label["preference"] for label in record["labels"]}
        if len(labels) != 1 or labels == {1.5}:
            continue
        human = "A" if labels == {1.0} else "B"
        a, b = len(record["response_a"]), len(record["response_b"])
        longer = 0.5 if a == b else float(("A" if a > b else "B") == human)
        for key in ("all", record.get("source", "")):
            rows[key][0] += longer
            rows[key][1] += human == "A"
            rows[key][2] += 1

    def acc(hits, n):
        lo, hi = proportion_confint(hits, n, method="wilson")
        return {"accuracy": round(hits / n, 3), "ci95": [round(lo, 3), round(hi, 3)], "n": n}

    return {key: {"longer": acc(h, n), "always_a": acc(a, n)} for key, (h, a, n) in sorted(rows.items())}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=400)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--lr", type=float, default=None, help="empty: the app's LoRA default for reward models")
    parser.add_argument("--baselines-only", action="store_true", help="only the file's length/position baselines")
    args = parser.parse_args()
    if not DATA.exists():
        raise SystemExit(f"{DATA} is missing")
    if args.baselines_only:
        print(json.dumps(file_baselines(), indent=2))
        return
    out = bench_setup(DB, BROKER)
    started = time.monotonic()
    from django.conf import settings
    from django.contrib.auth import get_user_model

    from annotation.imports.importer import pairs_import
    from annotation.services.projects import project_create
    from judging.audit import scorer_audit
    from judging.models import JudgeRun
    from judging.services import reward_model_create, run_start
    from training.models import DatasetExport, TrainingJob
    from training.services.exports import export_create
    from training.services.jobs import job_create, job_reward_model
    from training.services.recipes import recipe_save

    work = out / "reward_audit"
    work.mkdir(exist_ok=True)
    worker = start_worker(work, BROKER, "bench-reward")
    timings = {}
    try:
        admin = get_user_model().objects.create(username="bench-admin", is_staff=True, is_superuser=True)
        project = project_create(name="AlpacaEval pairs", slug="alpacaeval", created_by=admin, overlap_k=2)
        subset = work / "pairs.jsonl"
        subset.write_text("\n".join(DATA.read_text().splitlines()[: args.pairs]) + "\n")
        batch = pairs_import(project=project, path=subset, fmt="pairs")
        recipe = recipe_save(project=project, name="gpt4-agree", user=admin,
                             config={"source": "human", "min_human_agreement": 1.0})  # fmt: skip
        export = export_create(project=project, recipe=recipe, fmt="dpo", user=admin, test_fraction=0.2,
                               run_now=True)  # fmt: skip
        assert export.state == DatasetExport.State.SUCCEEDED, export.error
        spec = {"base_model": str(settings.LOCAL_MODEL_PATH), "max_steps": args.steps, "batch_size": 8,
                "max_length": args.max_length, "eval_pairs": 200, "eval_generations": 4}  # fmt: skip
        if args.lr:
            spec["learning_rate"] = args.lr
        t = time.monotonic()
        job = job_create(export=export, user=admin, preset="reward-lora", settings_=spec)
        wait(lambda: TrainingJob.objects.get(pk=job.pk).state not in TrainingJob.LIVE, 6 * 3600, "the job")
        timings["training_and_heldout_eval_s"] = time.monotonic() - t
        job.refresh_from_db()
        if job.state != "succeeded":
            raise SystemExit(f"job {job.state}: {job.error}\n{job.log_tail}")
        trained = job_reward_model(job=job, user=admin)
        untrained = reward_model_create(project=project, user=admin, name="SmolLM2-135M, untrained head",
                                        model=str(settings.LOCAL_MODEL_PATH))  # fmt: skip
        audits = {}
        for scorer in (trained, untrained):
            t = time.monotonic()
            run = run_start(project=project, judge=scorer, user=admin)
            wait(lambda r=run: JudgeRun.objects.get(pk=r.pk).state not in JudgeRun.LIVE, 6 * 3600, "a scoring run")
            run.refresh_from_db()
            timings[f"scoring_{scorer.name}_s"] = time.monotonic() - t
            audit = scorer_audit(scorer, project)
            audit["pairs_scored_per_s"] = len(run.pair_ids) / timings[f"scoring_{scorer.name}_s"]
            audit["slices"] = [s for s in audit["slices"] if s["slice"] == "metadata source"] or audit["slices"][:8]
            audits[scorer.name] = audit
        ev = job.evaluation
        result = {
            "machine": machine_info(),
            "command": "bench/reward_audit.py " + " ".join(sys.argv[1:]),
            "data": {"pairs_imported": batch.pairs_created, "labels": batch.labels_created,
                     "export_train": export.rows_train, "export_test": export.rows_test},
            "job": {"spec": {k: job.spec.get(k) for k in ("method", "max_steps", "batch_size", "max_length",
                                                           "learning_rate", "lora_r", "center_rewards")},
                    "summary": job.summary},
            "runner_heldout": {k: ev.get(k) for k in ("pairs", "n", "accuracy", "ci95", "length_baseline",
                                                      "reward")},
            "audits": audits,
            "file_baselines": file_baselines(),
            "timings_s": {**timings, "total": time.monotonic() - started},
        }  # fmt: skip
    finally:
        worker.terminate()
    text = json.dumps(result, indent=2, default=str)
    (out / "reward_audit.json").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
