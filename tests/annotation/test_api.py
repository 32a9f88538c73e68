import io
import json

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotation.models import Label, Pair
from tests.factories import UserFactory, make_pairs

pytestmark = pytest.mark.django_db


def api(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


def test_requires_authentication(project):
    assert APIClient().get("/api/v1/projects/").status_code == 401


def test_token_authentication_refuses_bad_and_inactive_tokens(project, annotator):
    assert APIClient(HTTP_AUTHORIZATION="Token nope").get("/api/v1/projects/").status_code == 401
    client = api(annotator)
    assert client.get("/api/v1/projects/").status_code == 200
    annotator.is_active = False
    annotator.save(update_fields=["is_active"])
    refused = client.get("/api/v1/projects/")
    assert refused.status_code == 401 and "inactive" in refused.json()["detail"]


def test_project_list_and_detail_are_scoped(project, annotator, outsider):
    assert [p["slug"] for p in api(annotator).get("/api/v1/projects/").json()] == ["demo"]
    assert api(outsider).get("/api/v1/projects/").json() == []
    assert api(annotator).get("/api/v1/projects/demo/").json()["role"] == "annotator"


def test_a_lead_changes_settings_with_patch_through_the_settings_service(project, lead):
    """PATCH takes the settings the settings page takes; the service's own checks come back as a 400 on the field
    (the DRF exception handler in config/drf.py), and a refused change changes nothing."""
    pairs = make_pairs(project, 2)
    r = api(lead).patch("/api/v1/projects/demo/", {"overlap_k": 5, "practice_items": 2}, format="json")
    assert r.status_code == 200 and (r.json()["overlap_k"], r.json()["practice_items"]) == (5, 2)
    # the service re-opens slots when K changes, as the page does
    assert {p.open_slots for p in Pair.objects.filter(pk__in=[p.pk for p in pairs])} == {5}
    r = api(lead).patch("/api/v1/projects/demo/", {"strength_scale": ["only one"], "overlap_k": 1}, format="json")
    assert r.status_code == 400 and "strength_scale" in r.json()
    project.refresh_from_db()
    assert (project.overlap_k, project.strength_scale) == (5, [])


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/projects/demo/"),
        ("get", "/api/v1/projects/demo/progress/"),
        ("post", "/api/v1/projects/demo/imports/"),
        ("post", "/api/v1/projects/demo/assignments/next/"),
        ("post", "/api/v1/projects/demo/assignments/00000000-0000-0000-0000-000000000000/label/"),
        ("post", "/api/v1/projects/demo/assignments/00000000-0000-0000-0000-000000000000/skip/"),
    ],
)
def test_outsider_gets_404(project, outsider, method, path):
    assert getattr(api(outsider), method)(path).status_code == 404


def test_annotator_cannot_import_or_see_project_progress(project, annotator):
    assert api(annotator).post("/api/v1/projects/demo/imports/").status_code == 404
    # their own counts only: done, and how many pairs are still open to them
    assert api(annotator).get("/api/v1/projects/demo/progress/").json() == {"done": 0, "left": 0}


def test_create_project_needs_permission(db):
    body = {"name": "P", "slug": "p1", "overlap_k": 2, "guidelines": "Be fair."}
    assert api(UserFactory()).post("/api/v1/projects/", body, format="json").status_code == 403
    staff = UserFactory(is_staff=True)
    r = api(staff).post("/api/v1/projects/", body, format="json")
    assert r.status_code == 201 and r.json()["overlap_k"] == 2
    assert api(staff).post("/api/v1/projects/", body, format="json").status_code == 400


def test_mass_assignment_is_ignored(project, annotator):
    make_pairs(project, 1)
    client = api(annotator)
    a = client.post("/api/v1/projects/demo/assignments/next/").json()
    body = {"choice": "left", "annotator": 999, "project": 12, "pair": 1, "source": "external"}
    assert client.post(f"/api/v1/projects/demo/assignments/{a['id']}/label/", body, format="json").status_code == 201
    label = Label.objects.get()
    assert label.annotator == annotator and label.source == "human"


def test_annotate_flow_is_blinded_and_idempotent(project, annotator):
    make_pairs(project, 2, model_a="hidden-a", model_b="hidden-b")
    client = api(annotator)
    r = client.post("/api/v1/projects/demo/assignments/next/")
    assert r.status_code == 200
    body = r.json()
    assert "hidden-" not in json.dumps(body) and "pair" not in body
    assert set(body) >= {"id", "prompt", "left", "right", "choices"}
    url = f"/api/v1/projects/demo/assignments/{body['id']}/label/"
    assert client.post(url, {"choice": "right"}, format="json").status_code == 201
    again = client.post(url, {"choice": "right"}, format="json")
    assert again.status_code == 200 and again.json()["created"] is False
    conflict = client.post(url, {"choice": "left"}, format="json")
    assert conflict.status_code == 409 and conflict.json()["code"] == "already_answered"
    second = client.post("/api/v1/projects/demo/assignments/next/").json()
    assert client.post(f"/api/v1/projects/demo/assignments/{second['id']}/skip/").status_code == 200
    assert client.post("/api/v1/projects/demo/assignments/next/").status_code == 204
    assert Label.objects.count() == 1


def test_one_round_trip_per_label_the_answer_carries_the_next_pair(project, annotator):
    make_pairs(project, 3, model_a="hidden-a", model_b="hidden-b")
    client = api(annotator)
    first = client.post("/api/v1/projects/demo/assignments/next/").json()
    seen = {first["id"]}
    current = first
    for _ in range(2):
        r = client.post(f"/api/v1/projects/demo/assignments/{current['id']}/label/?next=1", {"choice": "left"},
                        format="json")  # fmt: skip
        assert r.status_code == 201 and r.json()["created"] is True
        current = r.json()["next"]
        assert current["id"] not in seen and "hidden-" not in json.dumps(current)  # blinded like next/
        seen.add(current["id"])
    # a repeated answer (a double click) is still idempotent and hands back the pair already held, not a new one
    last = client.post(f"/api/v1/projects/demo/assignments/{current['id']}/label/?next=1", {"choice": "left"},
                       format="json").json()  # fmt: skip
    assert last["created"] is True and last["next"] is None  # nothing left
    again = client.post(f"/api/v1/projects/demo/assignments/{current['id']}/label/?next=1", {"choice": "left"},
                        format="json").json()  # fmt: skip
    assert again["created"] is False and again["next"] is None
    assert Label.objects.count() == 3
    bad = client.post(f"/api/v1/projects/demo/assignments/{first['id']}/label/?next=1&exclude=nope", {"choice": "left"},
                      format="json")  # fmt: skip
    assert bad.status_code == 400 and "exclude" in bad.json()
    plain = client.post(f"/api/v1/projects/demo/assignments/{first['id']}/label/", {"choice": "left"}, format="json")
    assert "next" not in plain.json()  # without ?next the answer is as before


def test_import_through_api_reports_errors_and_writes_nothing(project, lead):
    bad = b'{"prompt": "p", "response_a": "a", "response_b": "b"}\n{"prompt": "q", "response_a": "a"}\n'
    f = io.BytesIO(bad)
    f.name = "bad.jsonl"
    r = api(lead).post("/api/v1/projects/demo/imports/", {"file": f}, format="multipart")
    assert r.status_code == 400
    report = r.json()
    assert report["state"] == "failed" and report["error_count"] >= 1
    assert report["errors"][0]["line"] == 2 and report["errors"][0]["field"] == "response_b"
    assert not Pair.objects.exists()
    good = io.BytesIO(bad.splitlines()[0] + b"\n")
    good.name = "good.jsonl"
    r = api(lead).post("/api/v1/projects/demo/imports/", {"file": good}, format="multipart")
    assert r.status_code == 201 and r.json()["pairs_created"] == 1
    batch = api(lead).get(f"/api/v1/projects/demo/imports/{r.json()['id']}/")
    assert batch.json()["state"] == "succeeded"


def test_progress_for_lead(project, lead, annotator):
    make_pairs(project, 3)
    client = api(annotator)
    a = client.post("/api/v1/projects/demo/assignments/next/").json()
    client.post(f"/api/v1/projects/demo/assignments/{a['id']}/label/", {"choice": "left"}, format="json")
    progress = api(lead).get("/api/v1/projects/demo/progress/").json()
    assert progress["pairs"] == 3 and progress["labels"] == 1 and progress["target_labels"] == 9


def test_openapi_schema_lists_endpoints(project, lead):
    r = api(lead).get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert r.status_code == 200
    paths = json.loads(r.content)["paths"]
    assert "/api/v1/projects/{slug}/assignments/next/" in paths
    assert "/api/v1/projects/{slug}/assignments/{assignment_id}/label/" in paths


def test_import_report_is_404_for_outsiders_and_annotators(project, lead, annotator, outsider):
    from annotation.models import ImportBatch

    batch = ImportBatch.objects.create(project=project, created_by=lead, filename="x.jsonl")
    url = f"/api/v1/projects/demo/imports/{batch.public_id}/"
    assert api(lead).get(url).status_code == 200
    assert api(annotator).get(url).status_code == 404
    assert api(outsider).get(url).status_code == 404
