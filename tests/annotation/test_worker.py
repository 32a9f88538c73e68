"""Large uploads go to a real Celery worker process (Redis in CI, the filesystem broker locally)."""

import io
import json

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotation.models import ImportBatch, Pair
from tests.worker import celery_worker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def _upload(lead, name, content):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=lead)[0].key}")
    f = io.BytesIO(content)
    f.name = name
    return client.post("/api/v1/projects/demo/imports/", {"file": f}, format="multipart")


def test_large_import_runs_on_a_worker_with_progress_and_report(settings, project, lead):
    settings.IMPORT_INLINE_MAX_BYTES = 100  # every upload in this test goes to the worker
    rows = [{"prompt": f"Question {i}?", "response_a": f"a{i}", "response_b": f"b{i}"} for i in range(3000)]
    good = "".join(json.dumps(r) + "\n" for r in rows).encode()
    bad = good + b'{"prompt": "x", "response_a": "y"}\n'
    with celery_worker():
        r = _upload(lead, "big.jsonl", good)
        assert r.status_code == 202 and r.json()["state"] == "queued"
        batch = ImportBatch.objects.get(public_id=r.json()["id"])
        assert wait_for(lambda: ImportBatch.objects.get(pk=batch.pk).state == "succeeded", timeout=90)
        assert Pair.objects.filter(project=project).count() == 3000

        r = _upload(lead, "bad.jsonl", bad)
        failed = ImportBatch.objects.get(public_id=r.json()["id"])
        assert wait_for(lambda: ImportBatch.objects.get(pk=failed.pk).state == "failed", timeout=90)
    failed.refresh_from_db()
    assert failed.errors[0]["line"] == 3001 and failed.errors[0]["field"] == "response_b"
    assert Pair.objects.filter(project=project).count() == 3000  # the failed import wrote nothing
