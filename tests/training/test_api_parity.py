"""The training pages' downloads and live data through the API (issue 21): an export's files and a job's artifacts,
streamed to a token client with the pages' checks (names the object lists, never a path from the URL or outside its
folder), a sweep's and an evaluation's progress, and the getting-started loop."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from generation.models import PromptSet
from generation.plan import plan_clean
from training.models import DatasetExport, Evaluation, Sweep, TrainingJob, TrainingMetric
from training.services.jobs import job_create

pytestmark = pytest.mark.django_db


def api_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


def body(response) -> bytes:
    return b"".join(response.streaming_content)


def test_export_files_stream_to_a_token_client_with_the_pages_checks(export, lead, annotator, settings):
    api = api_for(lead)
    slug = export.project.slug

    def url(name, export_id=export.public_id):
        return reverse("api-export-file", args=[slug, export_id, name])

    for name in ("train.jsonl", "test.parquet", "datasheet.md", "hf.zip"):
        response = api.get(url(name))
        assert response.status_code == 200 and response.streaming, name
        assert body(response) == (settings.EXPORT_ROOT / export.files[name]["path"]).read_bytes()
        expected = f"{slug}-{export.recipe.name}-v{export.recipe.version}-dpo-{name}"
        assert f'filename="{expected}"' in response["Content-Disposition"]
    for name in ("hf", "nothing.txt", "..%2F..%2Fsecret", "train.jsonl%00"):  # a folder, unlisted, escapes
        assert api.get(url(name)).status_code == 404, name
    assert api_for(annotator).get(url("train.jsonl")).status_code == 404
    # a path in the database that leaves EXPORT_ROOT is never served
    outside = settings.EXPORT_ROOT.parent / "outside.txt"
    outside.write_text("not an export's")
    files = {**export.files, "evil.txt": {"path": "../outside.txt", "bytes": 15}}
    DatasetExport.objects.filter(pk=export.pk).update(files=files)
    assert api.get(url("evil.txt")).status_code == 404
    # an export that is not finished serves nothing (as on the page)
    DatasetExport.objects.filter(pk=export.pk).update(state=DatasetExport.State.RUNNING)
    assert api.get(url("train.jsonl")).status_code == 404


@pytest.fixture
def job(export, admin, model_dir, settings):
    job = job_create(export=export, user=admin, settings_={"base_model": str(model_dir)})
    folder = settings.TRAINING_ROOT / str(job.public_id)
    folder.mkdir(parents=True)
    (folder / "README.md").write_text("# adapter card\n")
    (settings.TRAINING_ROOT / "elsewhere.txt").write_text("another job's")
    artifacts = {"README.md": {"path": f"{job.public_id}/README.md", "bytes": 15},
                 "stray.txt": {"path": "elsewhere.txt", "bytes": 13}}  # fmt: skip
    TrainingJob.objects.filter(pk=job.pk).update(artifacts=artifacts)
    job.refresh_from_db()
    return job


def test_job_artifacts_list_and_download_for_admins(job, admin, lead):
    api = api_for(admin)
    listed = api.get(reverse("api-training-job-files", args=[job.public_id])).json()
    assert [(f["name"], f["bytes"]) for f in listed] == [("README.md", 15), ("stray.txt", 13)]
    response = api.get(listed[0]["url"])
    assert response.status_code == 200 and body(response) == b"# adapter card\n"
    assert f'filename="{job.public_id}-README.md"' in response["Content-Disposition"]
    assert api.get(listed[1]["url"]).status_code == 404  # listed, but outside the job's folder
    assert api.get(reverse("api-training-job-file", args=[job.public_id, "missing.bin"])).status_code == 404
    for name in ("api-training-job-files", "api-training-job-file"):
        args = [job.public_id] if name.endswith("files") else [job.public_id, "README.md"]
        assert api_for(lead).get(reverse(name, args=args)).status_code == 404  # training is for admins


def test_sweep_and_evaluation_progress_as_their_pages_poll_them(job, admin, project, lead):
    sweep = Sweep.objects.create(project=project, export=job.export, preset="dpo-lora", axes={"beta": [0.1]},
                                 created_by=admin)  # fmt: skip
    TrainingJob.objects.filter(pk=job.pk).update(sweep=sweep, sweep_point={"beta": 0.1})
    TrainingMetric.objects.create(job=job, step=1, values={"loss": 0.69})
    api = api_for(admin)
    progress = api.get(reverse("api-training-sweep-progress", args=[sweep.public_id])).json()
    assert progress["live"] is True and progress["counts"]["queued"] == 1
    assert progress["runs"][0]["id"] == str(job.public_id) and progress["runs"][0]["series"]["loss"] == [[1, 0.69]]

    prompts = PromptSet.objects.create(project=project, name="held-out", created_by=lead)
    evaluation = Evaluation.objects.create(project=project, job=job, prompt_set=prompts, plan=plan_clean({}), limit=1,
                                           stage="both models answering", created_by=admin)  # fmt: skip
    url = reverse("api-training-evaluation-progress", args=[evaluation.public_id])
    assert api.get(url).json() == {"state": "generating", "stage": "both models answering", "error": "",
                                   "tuned_run": None, "baseline_run": None, "judge_run": None}  # fmt: skip
    assert api.post(url).status_code == 405  # not an action (the action route is after it)
    assert api_for(lead).get(url).status_code == 404


def test_the_getting_started_loop(export, lead, annotator):
    response = api_for(lead).get(reverse("api-pipeline", args=[export.project.slug]))
    stages = response.json()["stages"]
    assert [s["name"] for s in stages][:2] == ["Import", "Annotate"] and stages[0]["done"] is True
    assert response.json()["next"] == next(s["name"] for s in stages if not s["done"])
    assert api_for(annotator).get(reverse("api-pipeline", args=[export.project.slug])).status_code == 404
