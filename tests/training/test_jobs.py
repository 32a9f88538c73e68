"""Training jobs without training: the spec, validation before queueing, states, the reaper, admin-only pages, API
and command, and the multi-GPU launch command. (Runs are in test_runner.py and test_training_worker.py.)"""

import json
import os
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from tests.conftest import csrf, login
from training.jobs.launch import accelerate_config, gpu_count, runner_command
from training.jobs.lifecycle import job_claim, jobs_reap
from training.jobs.spec import JobSpec, kto_weights, spec_from_preset
from training.jobs.supervisor import job_command
from training.models import TrainingJob, TrainingMetric
from training.services.jobs import job_cancel, job_create

pytestmark = pytest.mark.django_db


def test_spec_defaults_follow_practice():
    spec = JobSpec(base_model="x/y")
    assert (spec.resolved_beta(), spec.epochs, spec.warmup_ratio, spec.max_length) == (0.1, 1.0, 0.1, 1024)
    assert spec.resolved_learning_rate() == pytest.approx(5e-6)  # LoRA: ten times full fine-tuning's 5e-7
    assert JobSpec(base_model="x/y", lora=False).resolved_learning_rate() == pytest.approx(5e-7)
    simpo = spec_from_preset("simpo-lora", {"base_model": "x/y"})
    assert (simpo.method, simpo.resolved_beta(), simpo.export_format) == ("simpo", 2.0, "dpo")
    assert spec_from_preset("kto-lora", {"base_model": "x/y"}).export_format == "kto"
    with pytest.raises(ValueError, match="loss_type"):
        JobSpec.from_dict({"base_model": "x/y", "loss_type": "made-up"})
    with pytest.raises(ValueError, match="unknown training settings: max_prompt_length"):
        JobSpec.from_dict({"base_model": "x/y", "max_prompt_length": 10})  # removed in TRL 1.x: refused, not ignored


def test_kto_weights_balance_the_classes():
    spec = JobSpec(base_model="x/y", method="kto")
    assert kto_weights(spec, 100, 100) == (1.0, 1.0)
    assert kto_weights(spec, 100, 300) == (3.0, 1.0)  # fewer desirable examples: up-weight them
    assert kto_weights(spec, 300, 100) == (1.0, 3.0)
    assert kto_weights(JobSpec(base_model="x/y", desirable_weight=2.0), 100, 300) == (2.0, pytest.approx(2 / 3))


def test_job_create_validates_before_queueing(export, admin, lead, model_dir):
    with pytest.raises(PermissionDenied):
        job_create(export=export, user=lead, settings_={"base_model": str(model_dir)})
    with pytest.raises(ValidationError) as err:
        job_create(export=export, user=admin, settings_={"base_model": "/no/such/model"})
    assert "no such model folder" in err.value.message_dict["base_model"][0]
    with pytest.raises(ValidationError) as err:
        job_create(export=export, user=admin, settings_={"base_model": "not a model id"})
    assert "base_model" in err.value.message_dict
    with pytest.raises(ValidationError) as err:
        job_create(export=export, user=admin, preset="kto-lora", settings_={"base_model": str(model_dir)})
    assert "KTO trains on a KTO export" in err.value.message_dict["export"][0]
    with pytest.raises(ValidationError) as err:
        job_create(export=export, user=admin, settings_={"base_model": "a/b", "lora_r": 0})
    assert "lora_r" in err.value.message_dict
    assert not TrainingJob.objects.exists()
    job = job_create(export=export, user=admin, settings_={"base_model": "HuggingFaceTB/SmolLM2-135M-Instruct"})
    assert job.state == "queued" and job.spec["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_cancel_claim_and_reap(export, admin, settings):
    queued = job_create(export=export, user=admin, settings_={"base_model": "a/b"})
    assert job_cancel(job=queued).state == "cancelled"
    assert job_claim(queued.pk, "w1") is None  # a cancelled job never starts
    job = job_create(export=export, user=admin, settings_={"base_model": "a/b"})
    assert job_claim(job.pk, "w1").state == "running"
    assert job_claim(job.pk, "w2") is None  # a redelivered task does not start it twice...
    assert TrainingJob.objects.get(pk=job.pk).state == "running"  # ...nor fail it while its heartbeat is fresh
    assert job_cancel(job=job).cancel_requested_at is not None and job.state == "running"  # stops at its next step
    TrainingJob.objects.filter(pk=job.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=settings.TRAINING_HEARTBEAT_TIMEOUT + 1)
    )
    assert jobs_reap() == 1
    job.refresh_from_db()
    assert job.state == "failed" and "stopped" in job.error


@pytest.mark.parametrize("who", ["lead", "annotator", "outsider"])
def test_training_pages_and_api_are_404_for_non_admins(export, admin, who, request):
    job = job_create(export=export, user=admin, settings_={"base_model": "a/b"})
    client = login(request.getfixturevalue(who))
    token = csrf(client)
    for url in (reverse("training:jobs"), reverse("training:job_detail", args=[job.public_id]),
                reverse("training:job_progress", args=[job.public_id]),
                reverse("training:job_download", args=[job.public_id, "adapter.zip"]),
                "/api/v1/training/jobs/", f"/api/v1/training/jobs/{job.public_id}/"):  # fmt: skip
        assert client.get(url).status_code == 404, url
    for url in (reverse("training:job_cancel", args=[job.public_id]), f"/api/v1/training/jobs/{job.public_id}/cancel/"):
        assert client.post(url, HTTP_X_CSRFTOKEN=token).status_code == 404, url
    body = {"export": str(export.public_id), "settings": {"base_model": "a/b"}}
    response = client.post("/api/v1/training/jobs/", body, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 404
    assert TrainingJob.objects.get(pk=job.pk).state == "queued"


def test_admin_launches_watches_and_cancels_from_the_dashboard(export, admin, model_dir):
    client = login(admin)
    page = client.get(reverse("training:jobs") + f"?export={export.public_id}")
    assert page.status_code == 200 and b"Launch a job" in page.content
    token = csrf(client)
    response = client.post(reverse("training:jobs"), {
        "export": str(export.public_id), "preset": "smoke", "base_model": str(model_dir), "method": "orpo",
        "lora": "yes", "beta": "0.2", "name": "first",
    }, HTTP_X_CSRFTOKEN=token)  # fmt: skip
    job = TrainingJob.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("training:job_detail", args=[job.public_id])
    assert (job.spec["method"], job.spec["beta"], job.spec["max_steps"], job.name) == ("orpo", 0.2, 2, "first")
    TrainingMetric.objects.create(job=job, step=1, values={"loss": 0.69, "rewards/margins": 0.01, "secret": 1})
    detail = client.get(reverse("training:job_detail", args=[job.public_id]))
    assert detail.status_code == 200 and b"job-charts" in detail.content
    progress = client.get(reverse("training:job_progress", args=[job.public_id]) + "?after=0").json()
    assert progress["state"] == "queued" and progress["metrics"] == [{"step": 1, "loss": 0.69, "rewards/margins": 0.01}]
    assert client.get(reverse("training:job_progress", args=[job.public_id]) + "?after=1").json()["metrics"] == []
    assert client.post(reverse("training:job_cancel", args=[job.public_id]), HTTP_X_CSRFTOKEN=token).status_code == 302
    assert TrainingJob.objects.get(pk=job.pk).state == "cancelled"
    bad = client.post(reverse("training:jobs"), {"export": str(export.public_id), "preset": "dpo-lora",
                                                  "base_model": "/no/such/model"}, HTTP_X_CSRFTOKEN=token)  # fmt: skip
    assert bad.status_code == 200 and b"no such model folder" in bad.content and TrainingJob.objects.count() == 1


def test_launch_without_csrf_fails(export, admin, model_dir):
    client = login(admin)
    response = client.post(reverse("training:jobs"), {"export": str(export.public_id), "preset": "dpo-lora",
                                                       "base_model": str(model_dir)})  # fmt: skip
    assert response.status_code == 403 and not TrainingJob.objects.exists()


def test_api_launch_progress_and_cancel(export, admin, model_dir):
    client = login(admin)
    token = csrf(client)
    body = {"export": str(export.public_id), "preset": "dpo-lora",
            "settings": {"base_model": str(model_dir), "loss_type": "ipo"}}  # fmt: skip
    created = client.post("/api/v1/training/jobs/", body, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert created.status_code == 202, created.content
    job_id = created.json()["id"]
    assert created.json()["spec"]["loss_type"] == "ipo" and created.json()["state"] == "queued"
    assert client.get(f"/api/v1/training/jobs/{job_id}/progress/").json()["live"] is True
    assert [j["id"] for j in client.get("/api/v1/training/jobs/").json()] == [job_id]
    cancelled = client.post(f"/api/v1/training/jobs/{job_id}/cancel/", HTTP_X_CSRFTOKEN=token)
    assert cancelled.json()["state"] == "cancelled"
    bad = client.post("/api/v1/training/jobs/", {**body, "settings": {"base_model": str(model_dir), "beta": -1}},
                      content_type="application/json", HTTP_X_CSRFTOKEN=token)  # fmt: skip
    assert bad.status_code == 400 and "beta" in bad.json()


def test_launch_training_command(export, admin, model_dir, capsys):
    with pytest.raises(CommandError, match="base_model"):
        call_command("launch_training", str(export.public_id), "--base-model", "/no/such/model")
    call_command("launch_training", str(export.public_id), "--base-model", str(model_dir), "--preset", "ipo-lora",
                 "--set", "lora_r=8", "--set", "beta=0.3", "--user", "admin")  # fmt: skip
    job = TrainingJob.objects.get()
    assert (job.spec["loss_type"], job.spec["lora_r"], job.spec["beta"], job.created_by) == ("ipo", 8, 0.3, admin)
    assert "queued" in capsys.readouterr().out


def test_several_gpus_launch_through_accelerate(tmp_path):
    assert runner_command(7, tmp_path, gpus=1, precision="bf16")[1:] == ["-m", "training.runner", "7"]
    command = runner_command(7, tmp_path, gpus=4, precision="bf16")
    assert command[1:4] == ["-m", "accelerate.commands.launch", "--config_file"] and command[-3:] == [
        "-m", "training.runner", "7"]  # fmt: skip
    config = json.loads((tmp_path / "accelerate.json").read_text())
    assert (config["num_processes"], config["distributed_type"], config["mixed_precision"]) == (4, "MULTI_GPU", "bf16")
    assert json.loads(accelerate_config(2, "fp32"))["mixed_precision"] == "no"


def _fake_nvidia_smi(tmp_path, monkeypatch, capability: str) -> None:
    """An nvidia-smi on PATH that reports two GPUs of the given compute capability."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "nvidia-smi"
    script.write_text(f"""#!/bin/sh
case "$*" in
  *compute_cap*) printf '{capability}\\n{capability}\\n' ;;
  *) printf 'GPU 0: Fake\\nGPU 1: Fake\\n' ;;
esac
""")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")


@pytest.mark.parametrize(("precision", "capability", "mixed"), [
    ("fp16", "9.0", "fp16"), ("fp32", "9.0", "no"), ("bf16", "9.0", "bf16"),
    ("auto", "7.5", "fp16"), ("auto", "8.0", "bf16"),  # auto: bf16 from Ampere on, as the runner decides
])  # fmt: skip
def test_a_multi_gpu_job_launches_in_its_own_precision(export, admin, model_dir, tmp_path, monkeypatch, precision,
                                                       capability, mixed):  # fmt: skip
    """The worker writes the accelerate config from the job's spec (it once always said bf16)."""
    _fake_nvidia_smi(tmp_path, monkeypatch, capability)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert gpu_count() == 2
    job = job_create(export=export, user=admin, settings_={"base_model": str(model_dir), "precision": precision})
    command = job_command(job, tmp_path, gpus=gpu_count())
    assert "accelerate.commands.launch" in command
    assert json.loads((tmp_path / "accelerate.json").read_text())["mixed_precision"] == mixed
