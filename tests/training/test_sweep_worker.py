"""A sweep on a real Celery worker consuming the ``gpu`` queue, with a real pretrained model (SmolLM2-135M-Instruct
on CPU): a β × learning-rate grid of four two-step runs all finish one after another and the comparison page ranks
them; cancelling a sweep ends its queued runs at once and stops the running one at its next step."""

import pytest
from django.urls import reverse

from tests.conftest import login
from tests.training.conftest import labelled_export, smollm2_gguf
from tests.worker import wait_for
from training.models import Sweep, TrainingJob, TrainingMetric
from training.services.sweeps import sweep_cancel, sweep_create
from training.sweeps.compare import sweep_comparison

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

RUN = {"max_steps": 2, "max_length": 96, "batch_size": 2, "eval_pairs": 4, "eval_generations": 1,
       "eval_max_new_tokens": 8, "eval_prompts": 0, "length_checks": 0}  # fmt: skip


def ended(sweep, timeout=600):
    assert wait_for(lambda: Sweep.objects.get(pk=sweep.pk).state != Sweep.State.RUNNING, timeout=timeout), [
        (j.state, j.stage, j.log_tail[-500:]) for j in sweep.jobs.all()
    ]  # fmt: skip
    sweep.refresh_from_db()
    return sweep


def test_a_four_run_sweep_finishes_and_is_ranked_and_a_cancel_stops_it(project, lead, admin, gpu_worker, settings):
    export = labelled_export(project, lead, "dpo")
    settings_ = {**RUN, "base_model": str(smollm2_gguf())}
    sweep = sweep_create(export=export, user=admin, axes="beta: 0.1, 0.5\nlearning_rate: 1e-5, 1e-3",
                         settings_=settings_, name="grid")  # fmt: skip
    sweep = ended(sweep)
    jobs = list(sweep.jobs.order_by("started_at"))
    assert sweep.state == "finished" and [j.state for j in jobs] == ["succeeded"] * 4, [j.error for j in jobs]
    assert [j.pk for j in jobs] == sorted(j.pk for j in jobs)  # one at a time, in the order queued
    assert all(jobs[i].finished_at <= jobs[i + 1].started_at for i in range(3))
    assert {(j.spec["beta"], j.spec["learning_rate"]) for j in jobs} == {(0.1, 1e-5), (0.1, 1e-3), (0.5, 1e-5),
                                                                         (0.5, 1e-3)}  # fmt: skip
    comparison = sweep_comparison(sweep)
    assert comparison["metric"] == "heldout_accuracy" and [r.get("rank") for r in comparison["rows"]] == [1, 2, 3, 4]
    values = [r["values"]["heldout_accuracy"] for r in comparison["rows"]]
    assert values == sorted(values, reverse=True)
    assert all(r["values"]["final_loss"] is not None and r["kl_estimate"] is not None for r in comparison["rows"])
    page = login(admin).get(reverse("training:sweep_detail", args=[sweep.public_id]))
    assert page.status_code == 200 and page.content.count(b"<tr data-job=") == 4 and b"Best by" in page.content

    long_runs = sweep_create(export=export, user=admin, axes="beta: 0.1, 0.2, 0.3",
                             settings_={**settings_, "max_steps": 500})  # fmt: skip
    first = long_runs.jobs.order_by("pk").first()
    assert wait_for(lambda: TrainingMetric.objects.filter(job=first).exists(), timeout=300, interval=0.1)
    sweep_cancel(sweep=long_runs)
    long_runs = ended(long_runs, timeout=300)
    assert wait_for(lambda: TrainingJob.objects.get(pk=first.pk).state not in TrainingJob.LIVE, timeout=300)
    first.refresh_from_db()
    assert first.state == "cancelled" and 1 <= first.step < 500 and "adapter.zip" in first.artifacts
    assert list(long_runs.jobs.exclude(pk=first.pk).values_list("state", flat=True)) == ["cancelled"] * 2
    assert long_runs.state == "cancelled" and not TrainingJob.objects.filter(
        started_at__isnull=False, sweep=long_runs
    ).exclude(pk=first.pk)
