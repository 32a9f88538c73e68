"""Health alarms (training.jobs.health) and TRL's countermeasures in the spec.

The monitor's rules on logged values, then tiny real runs (a one-layer Llama on CPU, through the runner in this
process) that trip alarms deterministically: an absurd learning rate saturates the accuracy and displaces the chosen
log-probs; a vanishing one leaves the margin flat; a stop policy ends the run early with the reason and a saved,
evaluated adapter. The healthy runs of test_runner.py trip none. The NaN and length rules are checked on logged values
only: a fp32 CPU run cannot be made to overflow on demand, and a random-weight model never ends an answer early."""

import math
import re
import zipfile

import pytest

from annotation.models import Pair
from tests.training.conftest import labelled, labelled_export
from training.jobs.health import ALARMS, HealthMonitor, length_check_steps
from training.jobs.lifecycle import job_claim
from training.jobs.spec import JobSpec
from training.models import TrainingJob, TrainingMetric
from training.runner.run import run_job
from training.services.exports import export_create
from training.services.jobs import job_create
from training.services.recipes import recipe_save


def spec(**settings) -> JobSpec:
    return JobSpec.from_dict({"base_model": "x", "alarm_window": 3, "warmup_ratio": 0.0, **settings})


def feed(monitor, rows):
    fired = []
    for step, values in enumerate(rows, 1):
        fired += monitor.observe(step, values)[1]
    return [a.alarm for a in fired]


def test_a_healthy_curve_trips_nothing():
    monitor = HealthMonitor(spec(), max_steps=20)
    rows = [{"loss": 0.69 - 0.02 * i, "rewards/margins": 0.05 * i, "rewards/accuracies": 0.5 + 0.02 * i,
             "logps/chosen": -100 + 0.1 * i, "rewards/chosen": 0.01 * i, "rewards/rejected": -0.04 * i}
            for i in range(1, 21)]  # fmt: skip
    assert feed(monitor, rows) == []
    assert monitor.history[-1][1]["kl_estimate"] == pytest.approx((0.2 + 0.8) / 2 / 0.1)


def test_each_rule_fires_once_with_its_step_value_and_advice():
    monitor = HealthMonitor(spec(kl_max=5), max_steps=40)
    nan = monitor.observe(1, {"loss": math.nan, "grad_norm": math.inf})[1]
    assert [a.alarm for a in nan] == ["nan"] and nan[0].policy == "stop" and nan[0].value == "nan"
    assert monitor.stop is nan[0]
    kl = monitor.observe(2, {"loss": 0.5, "rewards/chosen": 0.4, "rewards/rejected": -0.8})[1]
    assert [a.alarm for a in kl] == ["kl"] and kl[0].value == pytest.approx(6.0) and kl[0].policy == "warn"
    assert monitor.observe(3, {"loss": 0.5, "rewards/chosen": 2.0, "rewards/rejected": -2.0})[1] == []  # once
    assert all(a.advice == ALARMS[a.alarm][1] for a in monitor.fired)

    flat = HealthMonitor(spec(warmup_ratio=0.1), max_steps=20)  # warmup: steps 1-2
    assert feed(flat, [{"rewards/margins": 0.3 * i} for i in range(2)] + [{"rewards/margins": 0.301}] * 3) == [
        "margin_flat"
    ]
    saturated = HealthMonitor(spec(), max_steps=20)
    assert feed(saturated, [{"rewards/margins": m, "rewards/accuracies": 1.0} for m in (0.1, 0.5, 1.2)]) == [
        "saturation"
    ]
    late = HealthMonitor(spec(), max_steps=4)  # the same curve in the second half of the run is not "early"
    assert feed(late, [{"rewards/margins": 0.0}] + [{"rewards/margins": m, "rewards/accuracies": 1.0}
                                                    for m in (0.1, 0.5, 1.2)]) == []  # fmt: skip
    displaced = HealthMonitor(spec(displacement_drop=2.0), max_steps=20)
    rows = [{"rewards/margins": m, "logps/chosen": c} for m, c in ((0.1, -100), (0.3, -102), (0.6, -104.5))]
    assert feed(displaced, rows) == ["displacement"] and displaced.fired[0].value == pytest.approx(4.5)
    rising = HealthMonitor(spec(displacement_drop=2.0), max_steps=20)  # the margin fell too: not displacement
    assert feed(rising, [{"rewards/margins": m, "logps/chosen": c} for m, c in ((0.6, -100), (0.3, -103),
                                                                                  (0.1, -106))]) == []  # fmt: skip

    length = HealthMonitor(spec(on_length="stop"), max_steps=10)
    assert length.observe_lengths(0, 20.0) == []  # the base model's answers
    assert length.observe_lengths(5, 39.0) == []
    fired = length.observe_lengths(10, 41.0)
    assert [a.alarm for a in fired] == ["length"] and fired[0].policy == "stop" and length.stop is fired[0]


def test_policies_and_methods_without_a_reference():
    off = HealthMonitor(spec(on_nan="off"), max_steps=10)
    assert off.observe(1, {"loss": math.nan})[1] == [] and off.stop is None
    orpo = HealthMonitor(spec(method="orpo", kl_max=0.001), max_steps=10)
    values, fired = orpo.observe(1, {"rewards/chosen": -5.0, "rewards/rejected": -9.0})
    assert fired == [] and "kl_estimate" not in values  # no reference model: no drift to measure
    kto = HealthMonitor(spec(method="kto", kl_max=0.5), max_steps=10)
    assert [a.alarm for a in kto.observe(1, {"kl": 0.7})[1]] == ["kl"]  # KTO logs its own estimate
    assert length_check_steps(4, 2) == {1, 2} and length_check_steps(0, 50) == set()
    assert length_check_steps(4, 100) == {25, 50, 75, 100}


@pytest.mark.parametrize("given,message", [
    ({"rpo_alpha": 0.5, "method": "kto"}, "rpo_alpha: the SFT term is a DPO setting"),
    ({"label_smoothing": 0.1}, "label_smoothing: only the robust and exo_pair DPO losses use it"),
    ({"loss_type": "robust", "label_smoothing": 0.5}, "label_smoothing: must be in [0, 0.5)"),
    ({"loss_type": "exo_pair"}, "label_smoothing: the exo_pair loss needs it above 0"),
    ({"ld_alpha": 1.5}, "ld_alpha: must be in [0, 1]"),
    ({"use_weighting": True, "loss_type": "aot"}, "use_weighting: WPO weighting does not work with the aot losses"),
    ({"use_weighting": True, "rpo_alpha": 0.5}, "use_weighting: TRL 1.16 cannot weight the SFT term"),
    ({"on_kl": "panic"}, "on_kl: must be one of off, warn, stop"),
    ({"length_growth": 1.0}, "length_growth: must be above 1"),
    ({"rpo_alpha_typo": 1}, "unknown training settings: rpo_alpha_typo"),
])  # fmt: skip
def test_countermeasures_and_alarm_settings_are_validated(given, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        JobSpec.from_dict({"base_model": "x", **given})


TINY = {"max_length": 64, "batch_size": 2, "eval_pairs": 2, "eval_generations": 1, "eval_max_new_tokens": 4,
        "lora_r": 4, "lora_alpha": 8, "warmup_ratio": 0.1, "alarm_window": 3, "length_checks": 0}  # fmt: skip


def trained(project, lead, admin, tiny_model_dir, export=None, **settings_):
    export = export or labelled_export(project, lead, "dpo", n=24)
    job = job_create(export=export, user=admin, settings_={**TINY, **settings_, "base_model": str(tiny_model_dir)})
    job_claim(job.pk, "test")
    assert run_job(job.pk) == 0
    job.refresh_from_db()
    return job


@pytest.mark.django_db
def test_an_absurd_learning_rate_saturates_the_accuracy_early(project, lead, admin, tiny_model_dir):
    job = trained(project, lead, admin, tiny_model_dir, max_steps=12, learning_rate=1e-2, length_checks=2)
    assert job.state == "succeeded" and not job.stop_reason  # warn policies: the run goes on
    fired = {a["alarm"]: a for a in job.alarms}
    assert "saturation" in fired and fired["saturation"]["step"] <= 6, job.alarms
    assert "overfitting" in fired["saturation"]["advice"]
    assert "## Health alarms" in job.model_card and fired["saturation"]["title"] in job.model_card
    metrics = dict(TrainingMetric.objects.filter(job=job).values_list("step", "values"))
    assert all("kl_estimate" in v for v in metrics.values())
    assert {s for s, v in metrics.items() if "answer_tokens" in v} == {6, 12}  # two length checks


@pytest.mark.django_db
def test_near_identical_answers_at_a_high_learning_rate_displace_the_chosen_log_probs(project, lead, admin,
                                                                                     tiny_model_dir):  # fmt: skip
    """Chosen and rejected answers that differ in one token are the textbook case of likelihood displacement
    (Razin et al. 2024): pushing the rejected one down drags the chosen one with it."""
    pairs = labelled(project, 24, chat_every=0)
    for pair in pairs:
        Pair.objects.filter(pk=pair.pk).update(response_a=f"The answer is {pair.pk} and that is all.",
                                               response_b=f"The answer is {pair.pk} and that is all!")  # fmt: skip
    recipe = recipe_save(project=project, name="near-identical", config={"source": "human"}, user=lead)
    export = export_create(project=project, recipe=recipe, fmt="dpo", user=lead, test_fraction=0.25, run_now=True)
    job = trained(project, lead, admin, tiny_model_dir, export=export, max_steps=12, learning_rate=1e-2,
                  on_saturation="off")  # fmt: skip
    fired = {a["alarm"]: a for a in job.alarms}
    assert set(fired) == {"displacement"} and fired["displacement"]["value"] > 2.0, job.alarms
    assert "rpo_alpha" in fired["displacement"]["advice"] and fired["displacement"]["title"] in job.model_card


@pytest.mark.django_db
def test_a_vanishing_learning_rate_leaves_the_margin_flat(project, lead, admin, tiny_model_dir):
    job = trained(project, lead, admin, tiny_model_dir, max_steps=6, learning_rate=1e-9)
    assert [a["alarm"] for a in job.alarms] == ["margin_flat"] and job.state == "succeeded"
    assert job.alarms[0]["step"] == 4  # warmup is step 1; the first full window after it ends at step 4


@pytest.mark.django_db
def test_a_stop_policy_ends_the_run_early_with_the_reason_and_a_saved_adapter(project, lead, admin, tiny_model_dir,
                                                                              settings):  # fmt: skip
    job = trained(project, lead, admin, tiny_model_dir, max_steps=40, learning_rate=1e-2, kl_max=0.05, on_kl="stop")
    assert job.state == TrainingJob.State.STOPPED and job.get_state_display() == "Stopped early"
    assert job.step < 40 and job.stage == "stopped early"
    assert job.stop_reason.startswith(f"Drifted far from the reference at step {job.step} (")
    assert [a["alarm"] for a in job.alarms if a["policy"] == "stop"] == ["kl"]
    assert all(a["step"] <= job.step for a in job.alarms), (job.step, job.alarms)  # nothing after the stop
    with zipfile.ZipFile(settings.TRAINING_ROOT / job.artifacts["adapter.zip"]["path"]) as archive:
        assert "adapter_model.safetensors" in archive.namelist()
    assert job.evaluation["pairs"] > 0  # the stopped model is evaluated like a finished one
    assert "stopped early by a health alarm" in job.model_card


@pytest.mark.django_db
def test_trl_countermeasures_reach_the_trainer_and_train(project, lead, admin, tiny_model_dir):
    from training.runner.trl_run import Hardware, build_trainer, load_tokenizer

    s = JobSpec.from_dict({**TINY, "base_model": str(tiny_model_dir), "loss_type": "robust", "label_smoothing": 0.1,
                           "rpo_alpha": 0.5, "ld_alpha": 0.5})  # fmt: skip
    export = labelled_export(project, lead, "dpo", n=8)
    from datasets import load_from_disk
    from transformers import AutoModelForCausalLM

    from training.storage import export_root

    data = load_from_disk(str(export_root() / export.files["hf"]["path"]))
    hw = Hardware("cpu", "cpu", 0, "fp32", 0.0, 2, 1, False)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    trainer, args = build_trainer(s, hw, model, load_tokenizer(str(tiny_model_dir)), data["train"],
                                  export_root() / "out", [])  # fmt: skip
    assert args.loss_type == ["robust", "sft"] and args.loss_weights == [1.0, 0.5]  # RPO: DPO + the SFT term
    assert (args.label_smoothing, args.ld_alpha, args.use_weighting) == (0.1, 0.5, False)
    for extra in ({"rpo_alpha": 0.5, "ld_alpha": 0.5}, {"use_weighting": True}):  # each trains under TRL 1.16
        job = trained(project, lead, admin, tiny_model_dir, max_steps=2, loss_type="robust", label_smoothing=0.1,
                      **extra)  # fmt: skip
        assert job.state == "succeeded", job.error
    assert "| use_weighting | True |" in job.model_card
