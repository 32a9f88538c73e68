"""Pages and API around calibration: the lead's pair browser where pairs are marked gold, and practice
feedback on the annotation page and in the API."""

import json

import pytest
from django.urls import reverse

from annotation.models import Pair
from annotation.services.calibration import pair_gold_set
from annotation.services.projects import project_update
from tests.conftest import csrf, login
from tests.factories import ProjectFactory, UserFactory, make_pairs, member

pytestmark = pytest.mark.django_db


# --- pair browser and marking gold ----------------------------------------------------------------------------


def test_lead_marks_a_pair_as_gold_with_an_explanation(project, as_lead):
    [pair] = make_pairs(project, 1)
    url = reverse("annotation:pair_detail", args=[project.slug, pair.pk])
    page = as_lead.get(url).content.decode()
    assert "model-alpha" in page and pair.response_a in page  # leads see model names
    token = csrf(as_lead, url)
    data = {"gold": "B", "gold_explanation": "Guideline 2: **exact** answers win."}
    assert as_lead.post(url, data, HTTP_X_CSRFTOKEN=token).status_code == 302
    pair.refresh_from_db()
    assert (pair.gold, pair.gold_explanation, pair.open_slots) == ("B", "Guideline 2: **exact** answers win.", 0)
    listing = as_lead.get(reverse("annotation:pairs", args=[project.slug]) + "?gold=yes").content.decode()
    assert f'pairs/{pair.pk}/"' in listing and "gold: B" in listing


def test_marking_gold_needs_csrf(project, as_lead):
    [pair] = make_pairs(project, 1)
    url = reverse("annotation:pair_detail", args=[project.slug, pair.pk])
    assert as_lead.post(url, {"gold": "A"}).status_code == 403
    pair.refresh_from_db()
    assert pair.gold == ""


def test_an_invalid_gold_answer_is_shown_and_changes_nothing(project, as_lead):
    project_update(project=project, allow_both_bad=False)
    [pair] = make_pairs(project, 1)
    url = reverse("annotation:pair_detail", args=[project.slug, pair.pk])
    token = csrf(as_lead, url)
    response = as_lead.post(url, {"gold": "both_bad"}, HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    pair.refresh_from_db()
    assert pair.gold == ""


@pytest.mark.parametrize("who", ["annotator", "outsider", "other_lead"])
def test_pair_pages_are_404_for_everyone_but_the_projects_leads(project, annotator, outsider, who):
    [pair] = make_pairs(project, 1)
    user = {"annotator": annotator, "outsider": outsider}.get(who)
    if who == "other_lead":
        user = UserFactory()
        member(ProjectFactory(), user, "lead")
    client = login(user)
    for url in (reverse("annotation:pairs", args=[project.slug]),
                reverse("annotation:pair_detail", args=[project.slug, pair.pk])):  # fmt: skip
        assert client.get(url).status_code == 404
    token = csrf(client)
    url = reverse("annotation:pair_detail", args=[project.slug, pair.pk])
    assert client.post(url, {"gold": "A"}, HTTP_X_CSRFTOKEN=token).status_code == 404
    assert Pair.objects.get(pk=pair.pk).gold == ""


def test_a_lead_cannot_reach_a_pair_of_another_project_through_their_own(project, as_lead):
    other = ProjectFactory()
    [foreign] = make_pairs(other, 1)
    assert as_lead.get(reverse("annotation:pair_detail", args=[project.slug, foreign.pk])).status_code == 404


def test_pair_list_filters_and_searches(project, as_lead):
    pairs = make_pairs(project, 3)
    pair_gold_set(pair=pairs[0], gold="A")
    url = reverse("annotation:pairs", args=[project.slug])
    regular = as_lead.get(url + "?gold=no").content.decode()
    assert f'pairs/{pairs[0].pk}/"' not in regular and f'pairs/{pairs[1].pk}/"' in regular
    found = as_lead.get(url + f"?q={pairs[2].external_id}").content.decode()
    assert f'pairs/{pairs[2].pk}/"' in found and f'pairs/{pairs[1].pk}/"' not in found


# --- practice feedback ----------------------------------------------------------------------------------------


def _practice_project(project):
    pairs = make_pairs(project, 2)
    pair_gold_set(pair=pairs[0], gold="A", explanation="Per **guideline 3**, the shorter exact answer wins.")
    return project_update(project=project, practice_items=1, calibration_rate=0.0)


def test_practice_item_is_announced_and_answered_with_feedback(project, annotator):
    _practice_project(project)
    client = login(annotator)
    page = client.get(reverse("annotation:annotate", args=[project.slug])).content.decode()
    assert "Practice item." in page
    assignment = annotator.assignments.get()
    assert assignment.kind == "practice"
    wrong = "right" if assignment.left_is_a else "left"  # B, the wrong answer, in screen terms
    token = client.cookies["csrftoken"].value
    url = reverse("annotation:annotate_submit", args=[project.slug, assignment.public_id])
    body = client.post(url, json.dumps({"choice": wrong}), content_type="application/json", HTTP_X_CSRFTOKEN=token)
    html = body.json()["feedback_html"]
    expected_side = "left" if assignment.left_is_a else "right"
    assert "Not quite" in html and f"The {expected_side} response is better" in html
    assert "<strong>guideline 3</strong>" in html
    # the next item is a regular one, without the banner and without feedback
    nxt = client.get(reverse("annotation:annotate", args=[project.slug])).content.decode()
    assert "Practice item." not in nxt


def test_api_returns_feedback_only_for_practice_items(project, annotator):
    from rest_framework.test import APIClient

    _practice_project(project)
    api = APIClient()
    api.force_authenticate(annotator)
    base = f"/api/v1/projects/{project.slug}/assignments"
    first = api.post(f"{base}/next/").json()
    assert first["practice"] is True
    answer = api.post(f"{base}/{first['id']}/label/", {"choice": "tie"}, format="json").json()
    assert answer["feedback"]["correct"] is False and answer["feedback"]["expected"] in ("left", "right")
    second = api.post(f"{base}/next/").json()
    assert second["practice"] is False
    assert api.post(f"{base}/{second['id']}/label/", {"choice": "tie"}, format="json").json()["feedback"] is None
