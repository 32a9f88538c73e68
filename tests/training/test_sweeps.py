"""Sweeps without training: axes to runs (grid, random draws, ranges), validation before anything is queued, the
GPU-time budget, cancel and promote, the comparison's ranking and figures, and the page, API and command.
(Real runs on a worker: test_sweep_worker.py.)"""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from tests.conftest import csrf, login
from training.models import Evaluation, Sweep, TrainingJob, TrainingMetric
from training.services.sweeps import sweep_cancel, sweep_create, sweep_promote
from training.sweeps.compare import sweep_comparison, sweep_curves
from training.sweeps.flow import sweep_after_job, sweeps_settle
from training.sweeps.points import SEED_003, Range, parse_axes, parse_settings, sweep_points


def test_axes_are_read_by_each_settings_type_with_errors_naming_the_line():
    axes = parse_axes("beta: 0.05, 0.1\n# a comment\nlora: no, yes\nlora_r: 8, 16\nloss_type: sigmoid, ipo\n"
                      "learning_rate: empty, 1e-6")  # fmt: skip
    assert axes == {"beta": [0.05, 0.1], "lora": [False, True], "lora_r": [8, 16], "loss_type": ["sigmoid", "ipo"],
                    "learning_rate": [None, 1e-6]}  # fmt: skip
    for text, error in (("beta 0.1", "axes line 1: write it as field: value"),
                        ("beta: 0.1\nbetta: 0.2", "axes line 2: betta: not a training setting"),
                        ("lora_r: 8.5", "axes line 1: lora_r: '8.5' is not a number"),
                        ("beta: 0.1, 0.1", "axes line 1: beta: a value is repeated"),
                        ("base_model: a, b", "axes line 1: base_model: every run of a sweep trains the same model"),
                        ("beta: 0.1\nbeta: 0.2", "axes line 2: beta is given twice"),
                        ("", "axes: name at least one setting")):  # fmt: skip
        with pytest.raises(ValueError, match=error):
            parse_axes(text)
    assert parse_axes({"beta": [0.1, "0.2"], "lora_r": 8}) == {"beta": [0.1, 0.2], "lora_r": [8]}
    assert parse_settings("max_steps: 2\nlora: no") == {"max_steps": 2, "lora": False}
    with pytest.raises(ValueError, match="settings line 1: write a training setting"):
        parse_settings("max_stepz: 2")


def test_grids_random_draws_and_ranges():
    grid = sweep_points(parse_axes(SEED_003), mode="grid", draws=0, seed=0, max_runs=24)
    assert len(grid) == 24 and grid[0] == {"beta": 0.05, "learning_rate": 1e-7, "warmup_ratio": 0.05}
    with pytest.raises(ValueError, match="max_runs: the grid has 24 points, more than the cap of 16"):
        sweep_points(parse_axes(SEED_003), mode="grid", draws=0, seed=0, max_runs=16)
    axes = parse_axes("beta: 0.1, 0.5\nlearning_rate: 1e-6..1e-4")
    assert isinstance(axes["learning_rate"][0], Range)
    with pytest.raises(ValueError, match="ranges .* are for random mode"):
        sweep_points(axes, mode="grid", draws=0, seed=0, max_runs=16)
    drawn = sweep_points(axes, mode="random", draws=6, seed=3, max_runs=16)
    assert drawn == sweep_points(axes, mode="random", draws=6, seed=3, max_runs=16)  # the seed decides
    assert len({repr(p) for p in drawn}) == 6 and all(1e-6 <= p["learning_rate"] <= 1e-4 for p in drawn)
    assert {p["beta"] for p in drawn} <= {0.1, 0.5}
    with pytest.raises(ValueError, match="draws: only 2 distinct points exist"):
        sweep_points(parse_axes("beta: 0.1, 0.5"), mode="random", draws=3, seed=0, max_runs=16)


def test_a_sweep_queues_one_ordinary_job_per_point_or_none_at_all(export, admin, lead, model_dir):
    base = {"base_model": str(model_dir), "max_steps": 2}
    sweep = sweep_create(export=export, user=admin, axes="beta: 0.1, 0.5\nlearning_rate: 1e-6, 1e-5", settings_=base,
                         name="b×lr")  # fmt: skip
    jobs = list(sweep.jobs.order_by("pk"))
    assert [j.sweep_point for j in jobs] == [
        {"beta": 0.1, "learning_rate": 1e-6},
        {"beta": 0.1, "learning_rate": 1e-5},
        {"beta": 0.5, "learning_rate": 1e-6},
        {"beta": 0.5, "learning_rate": 1e-5},
    ]
    assert all(j.state == "queued" and j.spec["max_steps"] == 2 for j in jobs)  # fmt: skip
    assert (jobs[3].spec["beta"], jobs[3].spec["learning_rate"]) == (0.5, 1e-5)
    assert jobs[3].name == "b×lr #4: beta=0.5, learning_rate=1e-05"
    # One bad run refuses the whole sweep, naming the run; nothing is queued.
    with pytest.raises(ValidationError, match=r"run 2 \(beta=200\): beta: must be in \(0, 100\]"):
        sweep_create(export=export, user=admin, axes="beta: 0.1, 200", settings_=base)
    with pytest.raises(ValidationError, match="KTO trains on a KTO export"):  # run 2 fails after run 1 was made
        sweep_create(export=export, user=admin, axes="method: dpo, kto", settings_=base)
    with pytest.raises(PermissionDenied, match="Only admins launch sweeps"):
        sweep_create(export=export, user=lead, axes="beta: 0.1", settings_=base)
    assert Sweep.objects.count() == 1 and TrainingJob.objects.count() == 4


def ended(job, state="succeeded", minutes=1.0, **fields):
    now = timezone.now()
    TrainingJob.objects.filter(pk=job.pk).update(state=state, started_at=now - timedelta(minutes=minutes),
                                                 finished_at=now, **fields)  # fmt: skip
    job.refresh_from_db()
    return job


def test_the_budget_cancels_what_is_queued_and_the_sweep_ends_when_no_run_is_live(export, admin, model_dir):
    model = {"base_model": str(model_dir)}
    sweep = sweep_create(export=export, user=admin, axes="beta: 0.1, 0.2, 0.3", settings_=model, budget_minutes=2)
    first, second, third = sweep.jobs.order_by("pk")
    ended(first, minutes=1.5)
    sweep_after_job(first.pk)
    assert sweep.jobs.filter(state="queued").count() == 2  # 1.5 of 2 minutes: go on
    ended(second, minutes=1.0)
    sweep_after_job(second.pk)
    sweep_after_job(second.pk)  # a redelivered task changes nothing
    third.refresh_from_db()
    sweep.refresh_from_db()
    assert third.state == "cancelled" and "GPU-time budget (2 min) is spent" in third.stage
    assert sweep.state == "finished" and "budget" in sweep.stage and sweep.finished_at


def test_cancel_ends_queued_runs_asks_the_running_one_to_stop_and_keeps_finished_ones(export, admin, model_dir):
    model = {"base_model": str(model_dir)}
    sweep = sweep_create(export=export, user=admin, axes="beta: 0.1, 0.2, 0.3", settings_=model)
    done, running, queued = sweep.jobs.order_by("pk")
    ended(done)
    TrainingJob.objects.filter(pk=running.pk).update(state="running", started_at=timezone.now())
    sweep_cancel(sweep=sweep)
    sweep_cancel(sweep=sweep)  # a double click
    states = dict(sweep.jobs.values_list("pk", "state"))
    assert states == {done.pk: "succeeded", running.pk: "running", queued.pk: "cancelled"}
    assert TrainingJob.objects.get(pk=running.pk).cancel_requested_at is not None
    sweep.refresh_from_db()
    assert sweep.state == "cancelled"
    sweeps_settle()  # beat leaves a cancelled sweep cancelled
    assert Sweep.objects.get(pk=sweep.pk).state == "cancelled"


def test_the_comparison_ranks_by_lc_win_rate_else_held_out_accuracy_and_promotes(export, admin, model_dir, lead):
    model = {"base_model": str(model_dir)}
    sweep = sweep_create(export=export, user=admin, axes="beta: 0.1, 0.5, 1.0", settings_=model)
    a, b, c = sweep.jobs.order_by("pk")
    for job, accuracy, kl in ((a, 0.6, 0.2), (b, 0.8, 0.05)):
        ended(job, evaluation={"tuned": {"accuracy": accuracy, "ci95": [accuracy - 0.1, accuracy + 0.1]},
                               "kl": {"mean": kl, "ci95": [0, kl * 2]}},
              summary={"tokens_per_s": 100.0})  # fmt: skip
        TrainingMetric.objects.create(job=job, step=1, values={"loss": 0.7, "rewards/margins": 0.0, "kl_estimate": 0.1})
        TrainingMetric.objects.create(job=job, step=2, values={"loss": 0.6, "rewards/margins": accuracy})
    ended(c, state="failed")
    comparison = sweep_comparison(sweep)
    assert comparison["metric"] == "heldout_accuracy"  # no run has a win rate yet
    assert [r["id"] for r in comparison["rows"]] == [str(b.public_id), str(a.public_id), str(c.public_id)]
    assert comparison["best_value"] == 0.8 and comparison["best_interval"] == pytest.approx([0.7, 0.9])
    assert comparison["rows"][2].get("rank") is None and comparison["runner_up_value"] == 0.6
    assert sweep_comparison(sweep, "kl")["best"]["id"] == str(b.public_id)  # lower is better
    assert sweep_comparison(sweep, "final_loss")["rows"][0]["values"]["final_loss"] == 0.6
    # Win rates from each run's evaluation against its base take over once every run with a model has one.
    for job, lc in ((a, 0.7), (b, 0.4)):
        Evaluation.objects.create(project=job.project, job=job, prompt_set_id=_prompt_set(job, lead).pk, plan={},
                                  limit=1, state="succeeded", report={"lc_win_rate": lc, "lc_win_rate_ci95": [lc - 0.2,
                                  lc + 0.2], "win_rate": lc, "mean_length_change": 3.0})  # fmt: skip
    comparison = sweep_comparison(sweep)
    assert comparison["metric"] == "lc_win_rate" and comparison["best"]["id"] == str(a.public_id)
    assert comparison["rows"][0]["mean_length_change"] == 3.0
    curves = sweep_curves(sweep)
    assert curves["runs"][0]["series"]["loss"] == [[1, 0.7], [2, 0.6]]
    assert sorted((p["beta"], p["kl"]) for p in curves["beta_kl"]) == [(0.1, 0.2), (0.5, 0.05)]

    with pytest.raises(ValidationError, match="Only a run that finished"):
        sweep_promote(sweep=sweep, job=c)
    other = sweep_create(export=export, user=admin, axes="beta: 0.2", settings_={"base_model": str(model_dir)})
    with pytest.raises(ValidationError, match="not part of this sweep"):
        sweep_promote(sweep=other, job=a)
    promoted = sweep_promote(sweep=sweep, job=a)
    first_at = promoted.promoted_at
    assert sweep_promote(sweep=sweep, job=a).promoted_at == first_at  # a double click keeps the first


def _prompt_set(job, lead):
    from generation.models import PromptSet

    return PromptSet.objects.get_or_create(project=job.project, name="held-out", defaults={"created_by": lead})[0]


def test_pages_api_and_command(export, admin, model_dir, capsys):
    client = login(admin)
    page = client.get(reverse("training:sweeps") + f"?export={export.public_id}")
    assert page.status_code == 200 and b"seed 003" in page.content and b"beta: 0.05, 0.1, 0.2, 0.5" in page.content
    token = csrf(client)
    form = {"export": str(export.public_id), "preset": "smoke", "base_model": str(model_dir), "mode": "grid",
            "axes": "beta: 0.1, 0.5", "settings": "max_steps: 3", "seed": 0, "max_runs": 4, "draws": ""}  # fmt: skip
    bad = client.post(reverse("training:sweeps"), {**form, "axes": "beta: 0.1\nbetta: 2"}, HTTP_X_CSRFTOKEN=token)
    assert bad.status_code == 200 and b"axes line 2: betta: not a training setting" in bad.content
    over = client.post(reverse("training:sweeps"), {**form, "max_runs": 1}, HTTP_X_CSRFTOKEN=token)
    assert b"the grid has 2 points, more than the cap of 1" in over.content and not Sweep.objects.exists()
    response = client.post(reverse("training:sweeps"), form, HTTP_X_CSRFTOKEN=token)
    sweep = Sweep.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("training:sweep_detail",
                                                                           args=[sweep.public_id])  # fmt: skip
    assert [j.spec["max_steps"] for j in sweep.jobs.all()] == [3, 3]
    detail = client.get(response["Location"])
    assert detail.status_code == 200 and b"sweep-charts" in detail.content and b"beta-kl" in detail.content
    assert b"run-table" in detail.content and detail.content.count(b"<tr data-job=") == 2
    progress = client.get(reverse("training:sweep_progress", args=[sweep.public_id])).json()
    assert progress["live"] and progress["counts"]["queued"] == 2 and len(progress["runs"]) == 2

    body = {
        "export": str(export.public_id),
        "axes": {"learning_rate": ["1e-6..1e-4"], "beta": [0.1, 0.2]},
        "mode": "random",
        "draws": 3,
        "settings": {"base_model": str(model_dir)},
        "metric": "heldout_accuracy",
    }
    created = client.post("/api/v1/training/sweeps/", body, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert created.status_code == 202, created.content
    data = created.json()
    assert len(data["runs"]) == 3 and data["axes"]["learning_rate"] == ["1e-06..0.0001"]
    bad = client.post("/api/v1/training/sweeps/", {**body, "axes": {"betta": [1]}}, content_type="application/json",
                      HTTP_X_CSRFTOKEN=token)  # fmt: skip
    assert bad.status_code == 400 and "betta: not a training setting" in bad.content.decode()
    got = client.get(f"/api/v1/training/sweeps/{data['id']}/?metric=kl").json()
    assert got["comparison"]["metric"] == "kl" and len(got["comparison"]["rows"]) == 3
    cancelled = client.post(f"/api/v1/training/sweeps/{data['id']}/cancel/", HTTP_X_CSRFTOKEN=token).json()
    assert cancelled["state"] == "cancelled"
    job = TrainingJob.objects.get(public_id=data["runs"][0])
    assert (
        client.post(
            f"/api/v1/training/sweeps/{data['id']}/promote/",
            {"job": str(job.public_id)},
            content_type="application/json",
            HTTP_X_CSRFTOKEN=token,
        ).status_code
        == 400
    )  # cancelled run

    call_command("launch_sweep", str(export.public_id), "--base-model", str(model_dir), "--axis", "beta: 0.1, 0.3",
                 "--axis", "lora_r: 8", "--set", "max_steps=2", "--max-runs", "2")  # fmt: skip
    assert "2 runs" in capsys.readouterr().out
    newest = Sweep.objects.order_by("-pk").first()
    assert newest.axes == {"beta": [0.1, 0.3], "lora_r": [8]} and newest.settings["max_steps"] == 2
    with pytest.raises(CommandError, match="max_runs: the grid has 2 points"):
        call_command("launch_sweep", str(export.public_id), "--base-model", str(model_dir), "--axis", "beta: 1, 2",
                     "--max-runs", "1")  # fmt: skip
