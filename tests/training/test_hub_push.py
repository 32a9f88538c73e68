"""Pushing an export to the Hugging Face Hub, up to the network boundary: huggingface_hub talks to a scripted Hub
(tests/training/fake_hub.py) at HF_ENDPOINT. The repo is created as asked, every request carries the token from the
environment variable the push names, README.md is the export's datasheet, a double click pushes once, and a missing
token or the Hub's refusal ends the push FAILED with a message that says why, the token nowhere."""

from __future__ import annotations

import io
import json

import pyarrow.parquet as pq
import pytest
from django.db import transaction
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.conftest import csrf, login
from tests.training.fake_hub import FakeHub
from training.models import DatasetExport, HubPush
from training.tasks import hub_push_task

pytestmark = pytest.mark.django_db

TOKEN = "hf_FakeTokenForTheScriptedHub0123456789"
TOKEN_ENV = "ARBITER_TEST_HF_TOKEN"
REPO = "acme/prefs-v1"


@pytest.fixture
def hub(settings, monkeypatch):
    """The scripted Hub as HF_ENDPOINT; offline mode (tests/conftest.py) lifted for it alone."""
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    with FakeHub() as server:
        settings.HF_ENDPOINT = server.endpoint
        yield server


@pytest.fixture
def queued(monkeypatch):
    """The push task as a worker would run it, in this process, once per queueing (recorded)."""
    calls = []

    class Inline:
        def delay_on_commit(self, push_id):  # as Celery's: delay once the transaction commits
            transaction.on_commit(lambda: self.delay(push_id))

        def delay(self, push_id):
            calls.append(push_id)
            hub_push_task(push_id)

    monkeypatch.setattr("training.services.hub.hub_push_task", Inline())
    return calls


def api_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


def push_url(export) -> str:
    return reverse("api-export-push", args=[export.project.slug, export.public_id])


def test_a_push_creates_the_repo_and_commits_the_card_and_splits_with_the_named_token(
    export, lead, hub, queued, monkeypatch, django_capture_on_commit_callbacks, caplog
):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    api = api_for(lead)
    body = {"repo_id": REPO, "private": True, "token_env": TOKEN_ENV}
    with django_capture_on_commit_callbacks(execute=True):
        first = api.post(push_url(export), body, format="json")
        again = api.post(push_url(export), body, format="json")  # a double click while the first is queued
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"] and first.json()["state"] == "queued"
    assert len(queued) == 1 and HubPush.objects.count() == 1  # queued once, pushed once

    state = api.get(push_url(export)).json()
    assert state["id"] == first.json()["id"] and state["state"] == "succeeded"
    assert state["commit_url"].startswith(f"{hub.endpoint}/datasets/{REPO}/commit/")
    assert state["repo_url"] == f"{hub.endpoint}/datasets/{REPO}"
    assert api.get(push_url(export), {"repo_id": REPO}).json()["id"] == state["id"]
    assert api.get(push_url(export), {"repo_id": "acme/other"}).status_code == 404

    assert hub.paths() == [
        "POST /api/repos/create", f"GET /api/datasets/{REPO}", "POST /api/validate-yaml",
        f"POST /api/datasets/{REPO}/preupload/main", f"POST /api/datasets/{REPO}/commit/main",
    ]  # fmt: skip
    create = json.loads(hub.requests[0]["body"])
    assert create == {"name": "prefs-v1", "organization": "acme", "visibility": "private", "type": "dataset"}
    assert hub.repos[REPO]["private"] is True and hub.repos[REPO]["commits"] == 1
    assert {r["headers"].get("authorization") for r in hub.requests} == {f"Bearer {TOKEN}"}
    files = hub.repos[REPO]["files"]
    assert set(files) == {"README.md", "data/train.parquet", "data/test.parquet", "datasheet.json"}
    export.refresh_from_db()
    assert files["README.md"].decode() == export.datasheet_md and "# " in export.datasheet_md
    train = pq.read_table(io.BytesIO(files["data/train.parquet"]))
    assert train.num_rows == export.rows_train and set(train.column_names) >= {"prompt", "chosen", "rejected"}

    # the token is nowhere but in the requests to the Hub: not in the database, not in the API, not in a log
    push = HubPush.objects.get()
    assert TOKEN not in str([getattr(push, f.attname) for f in HubPush._meta.concrete_fields])
    assert TOKEN not in str(state) and TOKEN not in caplog.text and push.token_env == TOKEN_ENV

    # the task delivered again (a redelivery) finds the push done and sends nothing
    before = len(hub.requests)
    hub_push_task(push.pk)
    assert len(hub.requests) == before


def test_a_missing_token_variable_fails_the_push_naming_it(export, lead, hub, queued, monkeypatch,
                                                           django_capture_on_commit_callbacks):  # fmt: skip
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    monkeypatch.setenv("ARBITER_TEST_EMPTY_TOKEN", "  ")
    for name in (TOKEN_ENV, "ARBITER_TEST_EMPTY_TOKEN"):
        with django_capture_on_commit_callbacks(execute=True):
            response = api_for(lead).post(push_url(export), {"repo_id": REPO, "token_env": name}, format="json")
        push = HubPush.objects.get(public_id=response.json()["id"])
        assert push.state == HubPush.State.FAILED and push.finished_at is not None
        assert f"The environment variable {name} is not set on the worker, or is empty" in push.error
    assert hub.requests == []  # nothing reached the Hub


@pytest.mark.parametrize(
    ("refuse", "commit_status", "expected"),
    [(401, None, ("401 Unauthorized' for url '{hub}/api/repos/create'", "refused with 401 by the fake hub",
                  f"(Check that the token in {TOKEN_ENV} is valid and may write to acme.)")),
     (None, 409, (f"409 Conflict' for url '{{hub}}/api/datasets/{REPO}/commit/main'",
                  "A commit has happened since"))],
)  # fmt: skip
def test_the_hubs_refusal_fails_the_push_with_its_message(export, lead, hub, queued, monkeypatch, refuse,
                                                          commit_status, expected,
                                                          django_capture_on_commit_callbacks):  # fmt: skip
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    hub.refuse, hub.commit_status = refuse, commit_status
    with django_capture_on_commit_callbacks(execute=True):
        response = api_for(lead).post(push_url(export), {"repo_id": REPO, "token_env": TOKEN_ENV}, format="json")
    push = HubPush.objects.get(public_id=response.json()["id"])
    assert push.state == HubPush.State.FAILED and push.commit_url == ""
    assert push.error.startswith("HfHubHTTPError: ") and TOKEN not in push.error
    for part in expected:  # what failed, where, the Hub's own words, and what to check
        assert part.format(hub=hub.endpoint) in push.error, push.error
    assert hub.requests  # it did reach the Hub
    # a failed push no longer blocks the repo: the next one is a new push
    hub.refuse = hub.commit_status = None
    with django_capture_on_commit_callbacks(execute=True):
        again = api_for(lead).post(push_url(export), {"repo_id": REPO, "token_env": TOKEN_ENV}, format="json")
    assert again.json()["id"] != response.json()["id"]
    assert HubPush.objects.get(public_id=again.json()["id"]).state == HubPush.State.SUCCEEDED


def test_a_private_push_to_an_existing_public_repo_is_refused(export, lead, hub, queued, monkeypatch,
                                                                django_capture_on_commit_callbacks):  # fmt: skip
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    hub.repos[REPO] = {"private": False, "files": {}, "commits": 0}
    with django_capture_on_commit_callbacks(execute=True):
        response = api_for(lead).post(push_url(export), {"repo_id": REPO, "token_env": TOKEN_ENV}, format="json")
    push = HubPush.objects.get(public_id=response.json()["id"])
    assert push.state == HubPush.State.FAILED and "already exists and is public" in push.error
    assert hub.repos[REPO]["commits"] == 0 and not any("/preupload/" in p for p in hub.paths())


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"repo_id": "no-owner"}, "repo_id"),
        ({"repo_id": "acme/../etc"}, "repo_id"),
        ({"repo_id": REPO, "token_env": TOKEN}, "token_env"),  # a token pasted where its variable's name goes
        ({"repo_id": REPO, "token_env": "MY-TOKEN"}, "token_env"),
        ({}, "repo_id"),
    ],
)
def test_bad_requests_are_400_and_queue_nothing(export, lead, queued, body, field):
    assert api_for(lead).get(push_url(export)).status_code == 404  # never pushed
    response = api_for(lead).post(push_url(export), body, format="json")
    assert response.status_code == 400 and field in response.json(), response.json()
    assert not HubPush.objects.exists() and not queued
    assert TOKEN not in response.content.decode()


def test_an_unfinished_export_cannot_be_pushed(export, lead, queued):
    DatasetExport.objects.filter(pk=export.pk).update(state=DatasetExport.State.RUNNING)
    response = api_for(lead).post(push_url(export), {"repo_id": REPO}, format="json")
    assert response.status_code == 400 and "finished export" in str(response.json())
    assert not HubPush.objects.exists()


def test_the_export_page_pushes_and_shows_the_state(export, lead, hub, queued, monkeypatch,
                                                    django_capture_on_commit_callbacks):  # fmt: skip
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    client = login(lead)
    page = reverse("training:export_detail", args=[export.project.slug, export.public_id])
    assert 'id="hub-push-form"' in client.get(page).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("training:export_push", args=[export.project.slug, export.public_id]),
                               {"repo_id": REPO, "private": "on", "token_env": TOKEN_ENV},
                               HTTP_X_CSRFTOKEN=csrf(client, page))  # fmt: skip
    assert response.status_code == 302 and response["Location"] == page
    shown = client.get(page).content.decode()
    assert REPO in shown and "Pushed" in shown and f"{hub.endpoint}/datasets/{REPO}/commit/" in shown
    assert TOKEN not in shown


def test_an_error_that_quotes_the_token_is_stored_without_it(export, lead, queued, monkeypatch,
                                                             django_capture_on_commit_callbacks, caplog):  # fmt: skip
    monkeypatch.setenv(TOKEN_ENV, TOKEN)

    def leaky(**kwargs):
        raise RuntimeError(f"could not send Authorization: Bearer {kwargs['token']}")

    monkeypatch.setattr("training.export.hub.hub_upload", leaky)
    with django_capture_on_commit_callbacks(execute=True):
        response = api_for(lead).post(push_url(export), {"repo_id": REPO, "token_env": TOKEN_ENV}, format="json")
    push = HubPush.objects.get(public_id=response.json()["id"])
    assert push.state == HubPush.State.FAILED and push.error == "RuntimeError: could not send Authorization: Bearer ***"
    assert TOKEN not in caplog.text and "Bearer ***" in caplog.text
