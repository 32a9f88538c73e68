"""Reward-model jobs without a full run: the spec's reward options and refusals, a KTO export refused, the rows the
trainer gets (margin kept only when asked), the health monitor on a reward model's logs, the job as a scorer of its
project (admins only, once however often asked) from the page and the API, and what other flows refuse. (The run
itself is in test_runner.py.)"""

import math
import shutil

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from judging.models import JudgeConfig
from tests.conftest import csrf, login
from tests.training.conftest import labelled_export
from training.evaluations.flow import evaluation_after_job, job_generator
from training.jobs.health import HealthMonitor
from training.jobs.spec import JobSpec, spec_from_preset
from training.models import Evaluation, TrainingJob
from training.services.jobs import job_create, job_reward_model
from training.storage import export_root, job_dir

pytestmark = pytest.mark.django_db


def reward(**settings) -> JobSpec:
    return spec_from_preset("reward-lora", {"base_model": "x/y", **settings})


def test_the_reward_preset_and_its_options():
    spec = reward()
    assert (spec.method, spec.export_format, spec.needs_reference, spec.is_policy) == ("reward", "dpo", False, False)
    assert spec.resolved_center_rewards() == 0.01 and spec.reward_margin is False
    assert reward(center_rewards=0).resolved_center_rewards() is None  # 0: off
    assert reward(center_rewards=0.1).resolved_center_rewards() == 0.1
    assert spec.resolved_learning_rate() == pytest.approx(5e-5)  # LoRA: ten times full fine-tuning's 5e-6
    assert reward(lora=False).resolved_learning_rate() == pytest.approx(5e-6)
    assert reward(reward_margin=True).reward_margin is True
    assert (spec.eval_prompts, spec.length_checks) == (0, 0)


@pytest.mark.parametrize("given,message", [
    ({"center_rewards": -0.1}, "center_rewards: must be in [0, 10]"),
    ({"center_rewards": math.inf}, "center_rewards: must be in [0, 10]"),
    ({"init_adapter": "/some/adapter"}, "init_adapter: a reward model starts from the base model"),
    ({"beta": 0.1}, "beta: a reward model has no β"),
])  # fmt: skip
def test_reward_settings_are_validated(given, message):
    with pytest.raises(ValueError) as err:
        reward(**given)
    assert str(err.value).startswith(message)


@pytest.mark.parametrize("given,message", [
    ({"center_rewards": 0.01}, "center_rewards: centring rewards is a reward-model setting"),
    ({"reward_margin": True}, "reward_margin: a margin in the loss is a reward-model setting"),
])  # fmt: skip
def test_reward_options_are_refused_for_policies(given, message):
    with pytest.raises(ValueError, match=message):
        spec_from_preset("dpo-lora", {"base_model": "x/y", **given})


def test_a_reward_job_refuses_a_kto_export_and_queues_on_a_dpo_one(project, lead, admin, model_dir):
    kto = labelled_export(project, lead, "kto")
    with pytest.raises(ValidationError) as err:
        job_create(export=kto, user=admin, preset="reward-lora", settings_={"base_model": str(model_dir)})
    assert "A reward model learns from pairs" in err.value.message_dict["export"][0]
    with pytest.raises(ValidationError) as err:  # the field named, as for every setting
        job_create(export=kto, user=admin, preset="reward-lora", settings_={"base_model": str(model_dir),
                                                                           "center_rewards": -1})  # fmt: skip
    assert "center_rewards" in err.value.message_dict
    dpo = labelled_export(project, lead, "dpo")
    job = job_create(export=dpo, user=admin, preset="reward-lora", settings_={"base_model": str(model_dir)})
    assert job.spec["method"] == "reward" and job.spec["center_rewards"] is None


def test_the_trainer_gets_token_ids_and_the_margin_only_when_asked(project, lead, tiny_model_dir):
    import datasets
    from transformers import AutoTokenizer
    from trl.trainer.reward_trainer import DataCollatorForPreference

    from training.runner.reward import reward_rows
    from training.runner.trl_run import TokenCounter, _columns_for_training

    export = labelled_export(project, lead, "dpo")
    train = datasets.load_from_disk(str(export_root() / export.files["hf"]["path"]))["train"]
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    rows, dropped = reward_rows(train, tokenizer, max_length=256, margin=True)
    rows = _columns_for_training(rows, "reward")
    assert set(rows.column_names) == {"chosen_ids", "rejected_ids", "margin"} and dropped == 0
    assert list(rows["margin"]) == pytest.approx(list(train["margin"]))
    counter = TokenCounter(DataCollatorForPreference(pad_token_id=tokenizer.pad_token_id))
    batch = counter([rows[0], rows[1]])
    assert batch["margin"].tolist() == pytest.approx(list(train["margin"])[:2])
    assert counter.tokens == len(rows[0]["chosen_ids"]) + len(rows[0]["rejected_ids"]) + len(
        rows[1]["chosen_ids"]
    ) + len(rows[1]["rejected_ids"])  # tokens/s counts the reward collator's tokens
    plain, _ = reward_rows(train, tokenizer, max_length=256, margin=False)
    assert "margin" not in _columns_for_training(plain, "reward").column_names
    short, dropped = reward_rows(train, tokenizer, max_length=60, margin=False)
    assert 0 < dropped < len(train) and len(short) == len(train) - dropped  # longer rows dropped and counted


def test_a_reward_models_logs_trip_no_policy_alarm_but_a_nan_still_stops():
    monitor = HealthMonitor(reward(alarm_window=3, warmup_ratio=0.0), max_steps=20)
    for step in range(1, 11):  # accuracy 1.0 at once and a racing margin: a DPO run would be "saturated"
        values, fired = monitor.observe(step, {"loss": 0.5 / step, "accuracy": 1.0, "margin": 2.0 * step,
                                               "min_reward": -step, "mean_reward": 0.0, "max_reward": step,
                                               "num_tokens": 100.0 * step, "grad_norm": 1.0})  # fmt: skip
        assert fired == [] and "kl_estimate" not in values
    assert [a.alarm for a in monitor.observe(11, {"loss": math.nan})[1]] == ["nan"]


def finished_reward_job(export, admin, model_dir, *, state="succeeded", **settings) -> TrainingJob:
    job = job_create(export=export, user=admin, preset="reward-lora", settings_={"base_model": str(model_dir),
                                                                                 **settings})  # fmt: skip
    adapter = job_dir(job) / "adapter"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text("{}")
    TrainingJob.objects.filter(pk=job.pk).update(state=state, evaluation={
        "kind": "reward", "pairs": 2, "n": 2, "accuracy": 0.5, "ci95": [0.09, 0.91], "center_rewards": 0.01,
        "length_baseline": {"n": 2, "accuracy": 1.0, "ci95": [0.34, 1.0], "equal_length": 0},
        "reward": {k: {"n": 2, "mean": 0.1, "ci95": [0.0, 0.2]} for k in ("chosen", "rejected", "margin")},
        "examples": [{"pair_id": 1, "prompt": "Q?", "chosen": "A.", "rejected": "B.", "chosen_reward": 0.3,
                      "rejected_reward": -0.2}],
    })  # fmt: skip
    job.refresh_from_db()
    return job


def test_a_reward_job_becomes_a_scorer_once_for_admins_only(export, admin, lead, model_dir):
    job = finished_reward_job(export, admin, model_dir)
    with pytest.raises(PermissionDenied):
        job_reward_model(job=job, user=lead)
    judge = job_reward_model(job=job, user=admin)
    assert (
        job_reward_model(job=job, user=admin) == judge and JudgeConfig.objects.filter(kind="reward_model").count() == 1
    )
    assert (judge.kind, judge.project, judge.model, judge.both_orders, judge.temperature) == (
        "reward_model", export.project, str(model_dir), False, 0.0)  # fmt: skip
    assert judge.adapter == str((job_dir(job) / "adapter").resolve()) and judge.name.endswith("reward model")
    assert len(judge.trained_on) == export.rows_train and judge.prompt_versions.count() == 1
    # A policy, a job that did not succeed, and a missing adapter are refused with the reason.
    policy = job_create(export=export, user=admin, settings_={"base_model": str(model_dir)})
    TrainingJob.objects.filter(pk=policy.pk).update(state="succeeded")
    policy.refresh_from_db()
    with pytest.raises(ValidationError, match="this job trained a policy"):
        job_reward_model(job=policy, user=admin)
    stopped = finished_reward_job(export, admin, model_dir, state="stopped")
    with pytest.raises(ValidationError, match="Only a succeeded"):
        job_reward_model(job=stopped, user=admin)
    gone = finished_reward_job(export, admin, model_dir)
    (job_dir(gone) / "adapter" / "adapter_config.json").unlink()
    (job_dir(gone) / "adapter").rmdir()
    with pytest.raises(ValidationError, match="adapter folder is missing"):
        job_reward_model(job=gone, user=admin)
    unread = finished_reward_job(export, admin, model_dir)
    shutil.rmtree(export_root() / export.files["hf"]["path"] / "train")  # without it, the audit's held-out is unknown
    with pytest.raises(ValidationError, match="training split is missing"):
        job_reward_model(job=unread, user=admin)


def test_a_reward_job_neither_generates_nor_is_evaluated_by_a_judge(export, admin, model_dir):
    JudgeConfig.objects.create(project=export.project, name="judge", model="m", base_url="http://127.0.0.1:9/v1")
    job = finished_reward_job(export, admin, model_dir, eval_prompts=4)
    with pytest.raises(ValidationError, match="does not generate"):
        job_generator(job=job, user=admin)
    assert evaluation_after_job(job.pk) is None and not Evaluation.objects.exists()


def test_the_job_page_and_the_api_turn_a_reward_job_into_a_scorer(export, admin, model_dir):
    job = finished_reward_job(export, admin, model_dir)
    client = login(admin)
    page = client.get(reverse("training:job_detail", args=[job.public_id]))
    assert page.status_code == 200
    assert b"reward-model-form" in page.content and b"Pick the longer response" in page.content
    assert b"generator-form" not in page.content and b"Win rate against the base model" not in page.content
    token = csrf(client)
    response = client.post(reverse("training:job_reward_model", args=[job.public_id]), HTTP_X_CSRFTOKEN=token)
    judge = JudgeConfig.objects.get(kind="reward_model")
    assert response.status_code == 302 and response["Location"] == reverse("judging:judges", args=[export.project.slug])
    api = client.post(f"/api/v1/training/jobs/{job.public_id}/reward-model/", HTTP_X_CSRFTOKEN=token)
    assert api.status_code == 201 and api.json()["id"] == str(judge.public_id)
    assert api.json()["trained_on"] == export.rows_train and JudgeConfig.objects.count() == 1
    policy = job_create(export=export, user=admin, settings_={"base_model": str(model_dir)})
    refused = client.post(f"/api/v1/training/jobs/{policy.public_id}/reward-model/", HTTP_X_CSRFTOKEN=token)
    assert refused.status_code == 400
