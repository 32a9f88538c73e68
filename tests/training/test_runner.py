"""The runner on a one-layer Llama (random weights, SmolLM2's tokenizer), in this process: a job records its
metrics, saves an adapter with a model card, and evaluates against its base; cancel stops it at the next step and
keeps what was saved; a bad model path or hub id fails the job with a clear error."""

import zipfile

import pytest
from django.urls import reverse

from tests.conftest import login
from tests.training.conftest import labelled_export
from training.jobs.lifecycle import job_claim
from training.models import TrainingJob, TrainingMetric
from training.runner.run import run_job
from training.services.jobs import job_cancel, job_create
from training.storage import job_dir

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


def test_a_reward_model_job_trains_a_scorer_that_loads_back_and_becomes_a_judge(project, lead, admin, tiny_model_dir,
                                                                                 settings):  # fmt: skip
    """Method reward: a sequence classifier trained on the export's pairs (with their margins), logging TRL's reward
    metrics; the adapter carries the trained score head and the tokenizer, so the base model + adapter loaded afresh
    (as the reward-model judge loads it) gives the rewards the job measured; evaluated as a scorer beside the
    length baseline; then made a judge of the project that leaves its training pairs out."""
    import datasets
    import torch
    from peft import PeftModel
    from safetensors import safe_open
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from judging.rewards.conversations import conversation
    from judging.rewards.scorer import load, score
    from training.export.hf_folder import split_pair_ids
    from training.runner.evaluation import test_pairs
    from training.runner.reward import rewards
    from training.services.jobs import job_reward_model
    from training.storage import export_root

    export = labelled_export(project, lead, "dpo")
    job = claimed(export, admin, "reward-lora", base_model=str(tiny_model_dir), max_steps=2, max_length=256,
                  eval_pairs=3, eval_generations=3, reward_margin=True)  # fmt: skip
    assert run_job(job.pk) == 0
    job.refresh_from_db()
    assert job.state == "succeeded", job.error
    first = TrainingMetric.objects.get(job=job, step=1).values
    assert {"loss", "accuracy", "margin", "mean_reward", "tokens_per_s"} <= set(first) and job.alarms == []
    assert job.summary["tokens"] > 0 and job.summary["rows_dropped_too_long"] == 0
    assert job.summary["rows_trained"] == export.rows_train

    adapter = settings.TRAINING_ROOT / str(job.public_id) / "adapter"
    with safe_open(str(adapter / "adapter_model.safetensors"), "pt") as weights:
        assert any("score" in key for key in weights.keys())
    assert (adapter / "tokenizer_config.json").exists()

    ev = job.evaluation
    assert ev["kind"] == "reward" and ev["pairs"] == ev["n"] == min(3, export.rows_test) > 0
    assert ev["ci95"][0] <= ev["accuracy"] <= ev["ci95"][1]
    assert ev["length_baseline"]["n"] == ev["n"] and 0 <= ev["length_baseline"]["accuracy"] <= 1
    assert ev["reward"]["margin"]["n"] == ev["n"] and ev["center_rewards"] == 0.01
    measured = {x["pair_id"]: (x["chosen_reward"], x["rejected_reward"]) for x in ev["examples"]}
    assert len(measured) == ev["n"]

    test = datasets.load_from_disk(str(export_root() / export.files["hf"]["path"]))["test"]
    pairs = test_pairs(test, 3)
    conversations = [conversation(p["prompt"], p[side]) for p in pairs for side in ("chosen", "rejected")]
    expected = [r for p in pairs for r in measured[p["pair_id"]]]
    # Loaded afresh: base as a one-output classifier, pad token set, then the adapter (with its score head)
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    base = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1, dtype=torch.float32)
    base.config.pad_token_id = tokenizer.pad_token_id
    model = PeftModel.from_pretrained(base, adapter).eval()
    again = [r for i in range(0, len(conversations), 2) for r in rewards(model, tokenizer, conversations[i : i + 2],
                                                                         256)]  # fmt: skip
    assert again == pytest.approx(expected, abs=1e-4)
    assert len(set(round(r, 4) for r in again)) > 1  # a trained head, not a constant

    judge = job_reward_model(job=job, user=admin)
    assert job_reward_model(job=job, user=admin) == judge  # a double click: the same scorer
    assert (judge.kind, judge.project, judge.model, judge.adapter) == ("reward_model", project, str(tiny_model_dir),
                                                                       str(adapter.resolve()))  # fmt: skip
    assert judge.trained_on == sorted(split_pair_ids(export_root() / export.files["hf"]["path"], "train"))
    assert len(judge.trained_on) == export.rows_train and not set(judge.trained_on) & {p["pair_id"] for p in pairs}
    # The judge's own loader and scorer (a gpu worker's) agree with what the job measured.
    judge_model, judge_tokenizer = load(judge.model, judge.adapter)
    scored = [s for s, _ in score(judge_model, judge_tokenizer, conversations)]
    assert scored == pytest.approx(expected, abs=1e-4)

    page = login(admin).get(reverse("training:job_detail", args=[job.public_id]))
    assert page.status_code == 200
    assert b"reward-model-form" in page.content and b"Pick the longer response" in page.content
    assert b"generator-form" not in page.content and b"evaluation-form" not in page.content
    assert "## The reward" in job.model_card and "pick the longer response" in job.model_card
    assert "| center_rewards_coefficient | 0.01 |" in job.model_card


def test_a_reward_model_job_whose_rows_are_all_too_long_fails_clearly(project, lead, admin, tiny_model_dir):
    export = labelled_export(project, lead, "dpo")
    job = claimed(export, admin, "reward-lora", base_model=str(tiny_model_dir), max_length=16)
    assert run_job(job.pk) == 1
    job.refresh_from_db()
    assert (
        job.state == "failed" and "longer than max_length (16 tokens" in job.error and "Raise max_length" in job.error
    )


def test_a_fully_fine_tuned_reward_model_is_a_classifier_folder_and_its_own_scorer(project, lead, admin,
                                                                                    tiny_model_dir):  # fmt: skip
    import json

    from training.services.jobs import job_reward_model

    export = labelled_export(project, lead, "dpo")
    job = claimed(export, admin, "reward-lora", base_model=str(tiny_model_dir), lora=False, max_steps=2,
                  max_length=256, center_rewards=0)  # fmt: skip
    assert run_job(job.pk) == 0
    job.refresh_from_db()
    assert job.state == "succeeded", job.error
    assert "model.zip" in job.artifacts and job.evaluation["center_rewards"] is None
    folder = job_dir(job) / "model"
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["LlamaForSequenceClassification"] and config["pad_token_id"] is not None
    judge = job_reward_model(job=job, user=admin)
    assert (judge.model, judge.adapter) == (str(folder.resolve()), "")
