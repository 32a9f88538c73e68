"""The runner on a one-layer Llama (random weights, SmolLM2's tokenizer), in this process: a job records its
metrics, saves an adapter with a model card, and evaluates against its base; cancel stops it at the next step and
keeps what was saved; a bad model path or hub id fails the job with a clear error."""

import zipfile

import pytest

from tests.training.conftest import labelled_export
from training.jobs.lifecycle import job_claim
from training.models import TrainingJob, TrainingMetric
from training.runner.run import run_job
from training.services.jobs import job_cancel, job_create

pytestmark = pytest.mark.django_db

FAST = {"max_steps": 3, "max_length": 64, "batch_size": 2, "eval_pairs": 3, "eval_generations": 1,
        "eval_max_new_tokens": 4, "lora_r": 4, "lora_alpha": 8}  # fmt: skip


def claimed(export, admin, preset, **settings_):
    job = job_create(export=export, user=admin, preset=preset, settings_={**FAST, **settings_})
    return job_claim(job.pk, "test")


@pytest.mark.parametrize("preset,fmt", [("dpo-lora", "dpo"), ("kto-lora", "kto"), ("simpo-lora", "dpo")])
def test_a_job_trains_saves_and_evaluates(project, lead, admin, tiny_model_dir, preset, fmt, settings):
    export = labelled_export(project, lead, fmt, conversational=fmt == "kto")
    job = claimed(export, admin, preset, base_model=str(tiny_model_dir))
    assert run_job(job.pk) == 0
    job.refresh_from_db()
    assert job.state == "succeeded", job.error
    assert (
        (job.step, job.max_steps) == (3, 3) and job.hardware["device"] == "cpu" and job.hardware["precision"] == "fp32"
    )
    steps = list(TrainingMetric.objects.filter(job=job).values_list("step", flat=True))
    assert steps == [1, 2, 3]
    first = TrainingMetric.objects.get(job=job, step=1).values
    assert {"loss", "learning_rate", "tokens_per_s"} <= set(first)
    if fmt == "dpo" and preset == "dpo-lora":
        assert {"rewards/margins", "rewards/accuracies", "rewards/chosen", "rewards/rejected"} <= set(first)
    if fmt == "kto":
        assert "kl" in first
    archive = settings.TRAINING_ROOT / job.artifacts["adapter.zip"]["path"]
    names = zipfile.ZipFile(archive).namelist()
    assert "adapter_config.json" in names and "adapter_model.safetensors" in names and "README.md" in names
    assert str(tiny_model_dir) in job.model_card and str(export.public_id) in job.model_card
    ev = job.evaluation
    assert ev["pairs"] == min(3, export.rows_test if fmt == "dpo" else ev["pairs"]) and ev["pairs"] > 0
    for block in (ev["base"], ev["tuned"], ev["implicit_reward"]):
        assert 0 <= block["accuracy"] <= 1 and block["ci95"][0] <= block["accuracy"] <= block["ci95"][1]
    assert len(ev["generations"]) == 1 and {"prompt", "base", "tuned"} <= set(ev["generations"][0])
    assert job.summary["steps"] == 3 and job.summary["tokens"] > 0


def test_cancel_stops_at_the_next_step_and_keeps_the_adapter(project, lead, admin, tiny_model_dir, settings):
    export = labelled_export(project, lead, "dpo")
    job = claimed(export, admin, "dpo-lora", base_model=str(tiny_model_dir), max_steps=50)
    job_cancel(job=job)
    assert run_job(job.pk) == 0
    job.refresh_from_db()
    assert job.state == "cancelled" and job.step == 1
    assert (settings.TRAINING_ROOT / job.artifacts["adapter.zip"]["path"]).exists()
    assert job.evaluation == {} and "cancelled" in job.model_card


def test_a_bad_model_fails_the_job_with_its_reason(project, lead, admin, tiny_model_dir):
    export = labelled_export(project, lead, "dpo")
    job = claimed(export, admin, "dpo-lora", base_model=str(tiny_model_dir))
    TrainingJob.objects.filter(pk=job.pk).update(spec={**job.spec, "base_model": "/gone/model"})
    assert run_job(job.pk) == 1
    job.refresh_from_db()
    assert job.state == "failed" and "/gone/model" in job.error
    # a hub id goes to the hub; offline (as in every test: tests/conftest.py) the job fails with the loader's
    # reason, not a crash
    job = claimed(export, admin, "dpo-lora", base_model="no-such-owner/no-such-model")
    assert run_job(job.pk) == 1
    job.refresh_from_db()
    assert job.state == "failed" and "Could not load the base model 'no-such-owner/no-such-model'" in job.error


def test_trl_still_has_the_reference_hash_the_runner_replaces():
    """training.runner.trl_run.reference_fingerprint swaps TRL's full-weight hash for a cheap per-run key; if TRL
    renames it, this fails instead of jobs silently spending seconds hashing weights again."""
    import trl.trainer.dpo_trainer as dpo
    import trl.trainer.kto_trainer as kto

    from training.runner.trl_run import reference_fingerprint

    originals = (dpo.hash_module, kto.hash_module)
    with reference_fingerprint("/run/a"):
        assert dpo.hash_module is not originals[0] and kto.hash_module is not originals[1]
    assert (dpo.hash_module, kto.hash_module) == originals
