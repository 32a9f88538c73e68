import json

import pytest
from django.urls import reverse

from annotation.models import Assignment, Label
from tests.conftest import csrf, login
from tests.factories import ProjectFactory, UserFactory, make_pairs

pytestmark = pytest.mark.django_db

PAGE_URLS = ["project_detail", "annotate", "guidelines", "members", "imports", "project_settings", "quality", "pairs"]
LEAD_ONLY = ["guidelines", "members", "imports", "project_settings", "quality", "pairs"]


@pytest.mark.parametrize("name", PAGE_URLS)
def test_outsider_gets_404_on_every_project_page(project, as_outsider, name):
    assert as_outsider.get(reverse(f"annotation:{name}", args=[project.slug])).status_code == 404


@pytest.mark.parametrize("name", LEAD_ONLY)
def test_annotator_gets_404_on_lead_pages(project, as_annotator, as_lead, name):
    assert as_annotator.get(reverse(f"annotation:{name}", args=[project.slug])).status_code == 404
    assert as_lead.get(reverse(f"annotation:{name}", args=[project.slug])).status_code == 200


def test_anonymous_is_sent_to_login(project, client):
    response = client.get(reverse("annotation:annotate", args=[project.slug]))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_outsider_gets_404_on_post_endpoints(project, annotator, as_outsider):
    make_pairs(project, 2)
    from annotation.services.assignment import assignment_next

    a = assignment_next(project=project, annotator=annotator)
    token = csrf(as_outsider)
    headers = {"HTTP_X_CSRFTOKEN": token}
    for url in [
        reverse("annotation:annotate_next", args=[project.slug]),
        reverse("annotation:annotate_submit", args=[project.slug, a.public_id]),
        reverse("annotation:annotate_skip", args=[project.slug, a.public_id]),
    ]:
        assert as_outsider.post(url, data="{}", content_type="application/json", **headers).status_code == 404


def test_teammate_cannot_answer_someone_elses_assignment(project, annotator, lead):
    make_pairs(project, 2)
    from annotation.services.assignment import assignment_next

    a = assignment_next(project=project, annotator=annotator)
    client = login(lead)
    url = reverse("annotation:annotate_submit", args=[project.slug, a.public_id])
    response = client.post(
        url, data='{"choice":"left"}', content_type="application/json", HTTP_X_CSRFTOKEN=csrf(client)
    )
    assert response.status_code == 404
    assert not Label.objects.exists()


def test_annotation_page_is_blinded(project, as_annotator):
    make_pairs(project, 3, model_a="secret-model-one", model_b="secret-model-two")
    html = as_annotator.get(reverse("annotation:annotate", args=[project.slug])).content.decode()
    assert "Question" in html
    assert "secret-model" not in html
    for pair in project.pairs.all():
        assert pair.content_hash not in html and pair.external_id not in html
    a = Assignment.objects.get()
    assert str(a.public_id) in html
    assert f'data-pair="{a.pair_id}"' not in html


def test_submit_without_csrf_is_refused(project, annotator, as_annotator):
    make_pairs(project, 1)
    as_annotator.get(reverse("annotation:annotate", args=[project.slug]))
    a = Assignment.objects.get()
    url = reverse("annotation:annotate_submit", args=[project.slug, a.public_id])
    assert as_annotator.post(url, data='{"choice":"left"}', content_type="application/json").status_code == 403
    assert not Label.objects.exists()


def test_label_prefetch_and_skip_flow(project, annotator, as_annotator):
    make_pairs(project, 3)
    token = csrf(as_annotator, reverse("annotation:annotate", args=[project.slug]))
    first = Assignment.objects.get()
    nxt = as_annotator.post(reverse("annotation:annotate_next", args=[project.slug]), {"exclude": str(first.public_id)},
                            HTTP_X_CSRFTOKEN=token)  # fmt: skip
    assert nxt.status_code == 200
    second = Assignment.objects.exclude(pk=first.pk).get()
    assert str(second.public_id) in nxt.content.decode()
    url = reverse("annotation:annotate_submit", args=[project.slug, first.public_id])
    body = json.dumps({"choice": "left", "time_on_item_ms": 1500})
    r1 = as_annotator.post(url, data=body, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    r2 = as_annotator.post(url, data=body, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert r1.json() == {"ok": True, "created": True}
    assert r2.json() == {"ok": True, "created": False}
    r3 = as_annotator.post(url, data='{"choice": "right"}', content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert r3.status_code == 409 and r3.json()["code"] == "already_answered"
    skip = as_annotator.post(reverse("annotation:annotate_skip", args=[project.slug, second.public_id]),
                             HTTP_X_CSRFTOKEN=token)  # fmt: skip
    assert skip.json()["ok"] is True
    assert Label.objects.count() == 1


def test_the_pages_answer_carries_the_pair_after_the_prefetched_one(project, annotator, as_annotator):
    """One request per label on the page: submit?next=1&exclude=<prefetched> claims and renders the pair after it."""
    make_pairs(project, 3, model_a="hidden-a", model_b="hidden-b")
    token = csrf(as_annotator, reverse("annotation:annotate", args=[project.slug]))
    first = Assignment.objects.get()
    as_annotator.post(reverse("annotation:annotate_next", args=[project.slug]), {"exclude": str(first.public_id)},
                      HTTP_X_CSRFTOKEN=token)  # fmt: skip
    second = Assignment.objects.exclude(pk=first.pk).get()
    url = reverse("annotation:annotate_submit", args=[project.slug, first.public_id])
    r = as_annotator.post(f"{url}?next=1&exclude={second.public_id}", data='{"choice": "left"}',
                          content_type="application/json", HTTP_X_CSRFTOKEN=token)  # fmt: skip
    third = Assignment.objects.exclude(pk__in=[first.pk, second.pk]).get()
    assert r.json()["created"] is True and str(third.public_id) in r.json()["next_html"]
    assert "hidden-" not in r.json()["next_html"]
    url = reverse("annotation:annotate_submit", args=[project.slug, second.public_id])
    last = as_annotator.post(f"{url}?next=1&exclude={third.public_id}", data='{"choice": "left"}',
                             content_type="application/json", HTTP_X_CSRFTOKEN=token)  # fmt: skip
    assert last.json() == {"ok": True, "created": True, "next_html": ""}  # nothing after the third
    assert Assignment.objects.count() == 3


def test_bad_submission_gets_a_clear_message(project, as_annotator):
    make_pairs(project, 1)
    token = csrf(as_annotator, reverse("annotation:annotate", args=[project.slug]))
    a = Assignment.objects.get()
    url = reverse("annotation:annotate_submit", args=[project.slug, a.public_id])
    r = as_annotator.post(url, data='{"choice": "sideways"}', content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert r.status_code == 400 and "choice" in r.json()["fields"]
    r = as_annotator.post(url, data="not json", content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert r.status_code == 400


def test_nothing_left_message(project, as_annotator):
    html = as_annotator.get(reverse("annotation:annotate", args=[project.slug])).content.decode()
    assert "Nothing left for you here" in html


def test_lead_overview_shows_progress(project, annotator, as_lead):
    make_pairs(project, 4)
    from annotation.services.assignment import assignment_next
    from annotation.services.labels import Submission, label_submit

    a = assignment_next(project=project, annotator=annotator)
    label_submit(assignment=a, submission=Submission(choice="left", time_on_item_ms=3000))
    html = as_lead.get(reverse("annotation:project_detail", args=[project.slug])).content.decode()
    assert "pairs complete" in html and "3.0 s" in html and "annotator" in html


def test_guidelines_edit_creates_a_version(project, as_lead):
    url = reverse("annotation:guidelines", args=[project.slug])
    token = csrf(as_lead, url)
    as_lead.post(url, {"body": "# New\nBe <script>kind</script>."}, HTTP_X_CSRFTOKEN=token)
    assert project.guideline_versions.count() == 2
    html = as_lead.get(url).content.decode()
    assert "<script>kind" not in html and "v2" in html


def test_members_page_adds_and_removes(project, as_lead):
    newcomer = UserFactory(username="newcomer")
    url = reverse("annotation:members", args=[project.slug])
    token = csrf(as_lead, url)
    as_lead.post(url, {"username": "newcomer", "role": "annotator"}, HTTP_X_CSRFTOKEN=token)
    assert project.memberships.filter(user=newcomer).exists()
    as_lead.post(reverse("annotation:member_remove", args=[project.slug, newcomer.pk]), HTTP_X_CSRFTOKEN=token)
    assert not project.memberships.filter(user=newcomer).exists()


def test_settings_change_k(project, as_lead):
    url = reverse("annotation:project_settings", args=[project.slug])
    token = csrf(as_lead, url)
    data = {"name": project.name, "overlap_k": 5, "rationale_mode": "optional", "lease_seconds": 600,
            "strength_scale": "a, b", "criteria": "", "allow_tie": "on", "calibration_rate": 0.2,
            "gold_threshold": 0.7, "practice_items": 3, "repeat_rate": 0.1}  # fmt: skip
    assert as_lead.post(url, data, HTTP_X_CSRFTOKEN=token).status_code == 302
    project.refresh_from_db()
    assert project.overlap_k == 5 and project.strength_scale == ["a", "b"] and not project.allow_both_bad
    assert project.calibration_rate == 0.2 and project.gold_threshold == 0.7
    assert project.practice_items == 3 and project.repeat_rate == 0.1


def test_project_creation_needs_permission(db):
    user = UserFactory()
    client = login(user)
    assert client.get(reverse("annotation:project_new")).status_code == 403
    staff = UserFactory(is_staff=True)
    client = login(staff)
    token = csrf(client, reverse("annotation:project_new"))
    data = {"name": "New", "slug": "new-one", "overlap_k": 3, "rationale_mode": "optional", "lease_seconds": 900,
            "guidelines": "Be fair.", "calibration_rate": 0.1,
            "gold_threshold": 0.6, "practice_items": 0, "repeat_rate": 0.05}  # fmt: skip
    assert client.post(reverse("annotation:project_new"), data, HTTP_X_CSRFTOKEN=token).status_code == 302


def test_project_list_shows_only_my_projects(project, as_outsider, as_annotator):
    ProjectFactory(name="Hidden Project")
    assert "Hidden Project" not in as_annotator.get("/").content.decode()
    assert "Demo" in as_annotator.get("/").content.decode()
    assert "Demo" not in as_outsider.get("/").content.decode()


def test_markdown_is_sanitized_on_the_annotation_page(project, as_annotator):
    from annotation.models import Pair

    [pair] = make_pairs(project, 1)
    Pair.objects.filter(pk=pair.pk).update(
        response_a='<script>alert(1)</script><img src=x onerror="alert(2)"> [x](javascript:alert(3))',
        response_b="```python\nprint('hi')\n```",
    )
    html = as_annotator.get(reverse("annotation:annotate", args=[project.slug])).content.decode()
    assert "<script>alert" not in html and "<img" not in html
    assert 'href="javascript:' not in html
    assert 'class="language-python"' in html


def test_upload_over_the_size_limit_is_refused_and_saves_nothing(settings, project, as_lead):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from annotation.models import ImportBatch

    settings.IMPORT_MAX_BYTES = 10
    url = reverse("annotation:imports", args=[project.slug])
    token = csrf(as_lead, url)
    upload = SimpleUploadedFile("big.jsonl", b'{"prompt": "p", "response_a": "a", "response_b": "b"}\n')
    html = as_lead.post(url, {"file": upload}, HTTP_X_CSRFTOKEN=token).content.decode()
    assert "big.jsonl is 54 bytes; the limit is 10 (IMPORT_MAX_BYTES)" in html
    assert not ImportBatch.objects.exists() and not project.pairs.exists()


def test_outsider_and_annotator_get_404_on_import_report_and_member_removal(project, lead, annotator, as_outsider):
    from annotation.models import ImportBatch

    batch = ImportBatch.objects.create(project=project, created_by=lead, filename="x.jsonl")
    report = reverse("annotation:import_detail", args=[project.slug, batch.public_id])
    remove = reverse("annotation:member_remove", args=[project.slug, lead.pk])
    for client in (as_outsider, login(annotator)):
        assert client.get(report).status_code == 404
        assert client.post(remove, HTTP_X_CSRFTOKEN=csrf(client)).status_code == 404
    assert project.memberships.filter(user=lead).exists()
