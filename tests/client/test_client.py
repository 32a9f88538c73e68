"""The Python client (client/, `pip install ./client`) against a live server: gunicorn serving the app over real
HTTP, a real Celery worker for the judge run and the training job, llama.cpp's OpenAI-compatible server as the judge.
A notebook's whole loop through the client alone: create a project, import a list of dicts (real AlpacaEval pairs
with their GPT-4-turbo labels) and a file, add members, read progress and agreement, mark a calibration pair, page
through pairs, dump the raw labels, run a judge, save a recipe, export and load it as a datasets.DatasetDict, push it
to a (scripted) Hugging Face Hub, launch a training job and follow its metrics."""

from __future__ import annotations

import itertools
import json

import pyarrow.parquet as pq
import pytest
from arbiter_client import Arbiter, ArbiterError
from django.utils import timezone
from rest_framework.authtoken.models import Token

from annotation.models import Membership
from tests.factories import UserFactory
from tests.services import alpacaeval_pairs
from tests.training.conftest import admin, tiny_model_dir, training_dirs  # noqa: F401 (fixtures)
from tests.training.fake_hub import FakeHub
from tests.worker import celery_worker, web_server

HF_TOKEN = "hf_client_test_token"  # the worker's environment holds it; the client names the variable
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres, pytest.mark.redis]


def alpacaeval_records(n: int) -> list[dict]:
    with open(alpacaeval_pairs(), encoding="utf-8") as fh:
        return [json.loads(line) for line in itertools.islice(fh, n)]


@pytest.fixture
def live(settings, admin, llama_server):  # noqa: F811
    """The app over HTTP and one worker for every queue, sharing this test's folders; an admin's client."""
    with FakeHub() as hub:
        env = {
            "EXPORT_ROOT": str(settings.EXPORT_ROOT),
            "TRAINING_ROOT": str(settings.TRAINING_ROOT),
            "MODEL_CACHE": str(settings.MODEL_CACHE),
            "HF_ENDPOINT": hub.endpoint,
            "CLIENT_TEST_HF_TOKEN": HF_TOKEN,
            "HF_HUB_OFFLINE": "0",  # the tests' default is offline; the Hub here is the scripted one
        }
        with web_server(env) as base, celery_worker("default,judge,gpu", env):
            api = Arbiter(base, Token.objects.create(user=admin).key)
            api.poll_seconds = 0.2
            api.hub = hub
            yield api
            api.close()


def test_a_notebook_runs_a_project_end_to_end_through_the_client(live, llama_server, tiny_model_dir, tmp_path):  # noqa: F811
    api = live
    annotator = UserFactory(username="ann", email="ann@example.com")
    lead = UserFactory(username="lee", email="lee@example.com")

    project = api.create_project(name="Client", slug="client", overlap_k=2, guidelines="Prefer the correct answer.")
    assert project.slug == "client" and any(p["slug"] == "client" for p in api.projects())
    with pytest.raises(ArbiterError) as refused:  # a clear error, nothing changed
        api.create_project(name="Again", slug="client")
    assert refused.value.status == 400 and "slug" in refused.value.message

    records = alpacaeval_records(24)
    batch = project.import_records(records[:20])
    assert batch["state"] == "succeeded" and batch["pairs_created"] == 20 and batch["labels_created"] == 40
    path = tmp_path / "more.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records[20:]))
    assert project.import_file(path)["pairs_created"] == 4
    path.write_text('{"prompt": "p", "response_a": "a"}\n')
    with pytest.raises(ArbiterError) as bad:
        project.import_file(path)
    assert "response_b" in bad.value.message and "line 1" in bad.value.message
    assert len(project.imports()) == 3

    project.add_member("ann")
    project.add_member("lee@example.com", role="lead")
    members = {m["username"]: m for m in project.members()}
    assert members["ann"]["role"] == "annotator" and members["lee"]["role"] == "lead"
    project.set_role(lead.pk, "annotator")
    project.remove_member(lead.pk)
    assert {m["username"] for m in project.members()} >= {"ann"} and "lee" not in {
        m["username"] for m in project.members()
    }
    Membership.objects.filter(user=annotator).update(paused_at=timezone.now(), paused_reason="Calibration 40%.")
    assert {m["username"]: m for m in project.members()}["ann"]["paused"]
    project.reinstate(annotator.pk)
    assert not {m["username"]: m for m in project.members()}["ann"]["paused"]
    project.set_guidelines("Prefer the correct answer; then the shorter one.")
    assert project.guidelines()[0]["body"].endswith("the shorter one.")

    progress = project.progress()
    assert progress["pairs"] == 24 and progress["external_labels"] == 48
    quality = project.quality()
    assert quality["krippendorff_alpha"]["value"] is not None  # the two GPT-4-turbo labels of each pair, compared

    pairs = list(project.pairs(page_size=5))
    assert len(pairs) == 24 and len({p["id"] for p in pairs}) == 24
    first = pairs[0]["id"]
    project.mark_calibration(first, "A", "The first answer is right.")
    assert [p["id"] for p in project.pairs(calibration=True)] == [first]
    detail = project.pair(first)
    assert len(detail["labels"]) == 2 and detail["gold"] == "A"
    project.unmark_calibration(first)

    dump = project.download_labels(tmp_path / "labels.parquet", pseudonymize=True)
    table = pq.read_table(dump)
    assert table.num_rows == 48

    judge = project.create_judge(name="smollm2", base_url=llama_server.base_url, model="smollm2-135m",
                                 max_tokens=48, both_orders=False)  # fmt: skip
    run = project.run_judge(judge["id"], limit=2, timeout=600)
    assert run["state"] == "succeeded" and run["verdicts_done"] == 2, run

    recipe = project.save_recipe("human", {"source": "human"})
    export = project.export(recipe, format="dpo", test_fraction=0.25)
    assert export["state"] == "succeeded" and export["rows_train"] > 0
    dataset = export.load_dataset(tmp_path / "ds")
    assert dataset["train"].num_rows == export["rows_train"] and dataset["test"].num_rows == export["rows_test"]
    assert {"prompt", "chosen", "rejected"} <= set(dataset["train"].column_names)
    assert export.download("datasheet.md", tmp_path).read_text().startswith("#")

    push = export.push_to_hub("team/client-prefs", private=True, token_env="CLIENT_TEST_HF_TOKEN")
    assert push["state"] == "succeeded", push
    repo = api.hub.repos["team/client-prefs"]
    assert repo["private"] and "README.md" in repo["files"] and "data/train.parquet" in repo["files"]
    # every call about the repo carries the token (huggingface_hub also fetches its telemetry registry, unsigned)
    sent = {r["headers"].get("authorization") for r in api.hub.requests if r["path"] != "/api/agent-harnesses"}
    assert sent == {f"Bearer {HF_TOKEN}"}, sent

    job = api.launch_job(export, preset="dpo-lora", settings={
        "base_model": str(tiny_model_dir), "max_steps": 2, "max_length": 96, "batch_size": 2, "eval_pairs": 2,
        "eval_generations": 1, "eval_max_new_tokens": 4})  # fmt: skip
    steps = [row["step"] for row in job.follow(timeout=600)]
    assert steps == [1, 2] and job["state"] == "succeeded", job.data
    assert job.download("adapter.zip", tmp_path / "adapter.zip").stat().st_size > 1000
