"""Auto-pause on calibration accuracy, end to end: pause, what the annotator sees, reinstatement, consensus."""

import json

import pytest
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotation.errors import AnnotatorPaused
from annotation.imports.importer import pairs_import
from annotation.models import PAUSE_AFTER, Assignment, Label, Membership
from annotation.selectors import pair_consensus, project_agreement
from annotation.services.assignment import assignment_next
from annotation.services.labels import Submission, label_submit
from tests.conftest import login
from tests.factories import make_pairs

pytestmark = pytest.mark.django_db


@pytest.fixture
def calibrated(project, tmp_path):
    rows = [{"prompt": f"Check {i}?", "response_a": f"right {i}", "response_b": f"wrong {i}", "gold": "A"}
            for i in range(PAUSE_AFTER + 2)]  # fmt: skip
    path = tmp_path / "gold.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    pairs_import(project=project, path=path, fmt="pairs")
    make_pairs(project, 3)
    project.calibration_rate = 1.0  # every new assignment is a calibration pair while any is left
    return project


def answer_gold(project, user, *, correctly: bool, n: int):
    for _ in range(n):
        a = assignment_next(project=project, annotator=user)
        assert a.kind == "gold"
        good, bad = ("left", "right") if a.left_is_a else ("right", "left")
        label_submit(assignment=a, submission=Submission(choice=good if correctly else bad))


def test_failing_calibration_pauses_and_a_lead_reinstates(calibrated, annotator, lead):
    project = calibrated
    answer_gold(project, annotator, correctly=False, n=PAUSE_AFTER)
    membership = Membership.objects.get(project=project, user=annotator)
    assert membership.paused_at is not None and "Calibration accuracy 0%" in membership.paused_reason
    with pytest.raises(AnnotatorPaused):
        assignment_next(project=project, annotator=annotator)

    # what the annotator sees: the page says why; the API answers 409 "paused"
    html = login(annotator).get(reverse("annotation:annotate", args=[project.slug])).content.decode()
    assert 'id="paused"' in html and "Calibration accuracy 0%" in html
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=annotator).key}")
    r = client.post(f"/api/v1/projects/{project.slug}/assignments/next/")
    assert r.status_code == 409 and r.json()["code"] == "paused"

    # the lead sees it on the members page and reinstates
    as_lead = login(lead)
    members = reverse("annotation:members", args=[project.slug])
    assert "Calibration accuracy 0%" in as_lead.get(members).content.decode()
    token = as_lead.cookies["csrftoken"].value
    r = as_lead.post(reverse("annotation:member_reinstate", args=[project.slug, annotator.pk]), HTTP_X_CSRFTOKEN=token)
    assert r.status_code == 302
    assert Membership.objects.get(project=project, user=annotator).paused_at is None
    project.calibration_rate = 0.0
    assert assignment_next(project=project, annotator=annotator) is not None


def test_the_answer_that_pauses_an_annotator_brings_no_next_pair(calibrated, annotator):
    """One round trip (label?next=1): the membership read with the request says "not paused", the calibration answer
    pauses them, and the next pair is not served on the stale reading."""
    project = calibrated
    project.save(update_fields=["calibration_rate"])
    answer_gold(project, annotator, correctly=False, n=PAUSE_AFTER - 1)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=annotator).key}")
    a = client.post(f"/api/v1/projects/{project.slug}/assignments/next/").json()
    held = Assignment.objects.get(public_id=a["id"])
    wrong = "right" if held.left_is_a else "left"
    r = client.post(f"/api/v1/projects/{project.slug}/assignments/{a['id']}/label/?next=1", {"choice": wrong},
                    format="json")  # fmt: skip
    assert r.status_code == 201 and r.json()["next"] is None
    assert Membership.objects.get(project=project, user=annotator).paused_at is not None
    assert not Assignment.objects.filter(annotator=annotator, state="active").exists()


def test_careful_annotator_is_not_paused(calibrated, annotator):
    answer_gold(calibrated, annotator, correctly=True, n=PAUSE_AFTER + 1)
    assert Membership.objects.get(project=calibrated, user=annotator).paused_at is None


def test_annotators_cannot_reinstate(calibrated, annotator, lead):
    Membership.objects.filter(project=calibrated, user=annotator).update(
        paused_reason="x", paused_at="2026-01-01T00:00Z"
    )
    client = login(annotator)
    client.get("/")
    url = reverse("annotation:member_reinstate", args=[calibrated.slug, annotator.pk])
    assert client.post(url, HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value).status_code == 404
    assert Membership.objects.get(project=calibrated, user=annotator).paused_at is not None


def test_paused_labels_leave_consensus_but_stay_in_agreement(project, annotator, lead):
    [pair] = make_pairs(project, 1)
    for user, choice in ((annotator, "A"), (lead, "B")):
        a = assignment_next(project=project, annotator=user)
        label_submit(assignment=a, submission=Submission(choice="left" if (choice == "A") == a.left_is_a else "right"))
    assert Label.objects.filter(pair=pair).count() == 2
    assert pair_consensus(project)[0]["labels"] == 2
    Membership.objects.filter(project=project, user=annotator).update(paused_at="2026-01-01T00:00Z")
    [c] = pair_consensus(project)
    assert c["labels"] == 1 and c["votes"]["B"] == 1
    assert project_agreement(project, n_boot=5)["labels"] == 2
