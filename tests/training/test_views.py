"""Curation and export pages: leads only (404 otherwise), CSRF on, downloads as attachments of listed files only."""

import pytest
from django.urls import reverse

from annotation.models import Label
from tests.conftest import csrf, login
from tests.factories import ProjectFactory, UserFactory, make_pairs, member
from training.models import CurationRecipe, DatasetExport
from training.services.exports import export_create
from training.services.recipes import recipe_save

pytestmark = pytest.mark.django_db


@pytest.fixture
def export(project, lead):
    for pair in make_pairs(project, 6):
        Label.objects.create(project=project, pair=pair, source="external", external_annotator="x", choice="A")
    recipe = recipe_save(project=project, name="r", config={"source": "human"}, user=lead)
    return export_create(project=project, recipe=recipe, fmt="dpo", user=lead, test_fraction=0.0)


FORM = {"name": "strict", "source": "human", "min_human_agreement": 0.5, "min_vote_margin": 0, "min_judge_margin": 0,
        "drop_judge_inconsistent": "on", "near_duplicates": "on", "response_similarity": 0.98,
        "prompt_similarity": 0.95, "seed": 0}  # fmt: skip


@pytest.mark.parametrize("who", ["annotator", "outsider", "other_lead"])
def test_everything_is_404_for_all_but_the_projects_leads(project, export, annotator, outsider, who):
    user = {"annotator": annotator, "outsider": outsider}.get(who)
    if who == "other_lead":
        user = UserFactory()
        member(ProjectFactory(), user, "lead")
    client = login(user)
    for url in (reverse("training:curation", args=[project.slug]),
                reverse("training:export_detail", args=[project.slug, export.public_id]),
                reverse("training:export_download", args=[project.slug, export.public_id, "train.jsonl"])):  # fmt: skip
        assert client.get(url).status_code == 404, url
    token = csrf(client)
    url = reverse("training:export_new", args=[project.slug, export.recipe_id])
    assert (
        client.post(url, {"format": "dpo", "test_fraction": 0.1, "seed": 0}, HTTP_X_CSRFTOKEN=token).status_code == 404
    )
    assert DatasetExport.objects.count() == 1


def test_lead_previews_saves_and_exports(project, export, as_lead):
    url = reverse("training:curation", args=[project.slug])
    token = csrf(as_lead, url)
    page = as_lead.post(url, {**FORM, "action": "preview"}, HTTP_X_CSRFTOKEN=token).content.decode()
    assert 'id="funnel"' in page and "Preview: 6 rows" in page
    assert not CurationRecipe.objects.filter(name="strict").exists()  # a preview saves nothing
    assert as_lead.post(url, {**FORM, "action": "save"}, HTTP_X_CSRFTOKEN=token).status_code == 302
    recipe = CurationRecipe.objects.get(name="strict")
    r = as_lead.post(reverse("training:export_new", args=[project.slug, recipe.pk]),
                     {"format": "kto", "test_fraction": 0.0, "seed": 1}, HTTP_X_CSRFTOKEN=token)  # fmt: skip
    new = DatasetExport.objects.get(recipe=recipe)
    assert r.status_code == 302 and new.state == "succeeded" and new.rows_train == 6
    detail = as_lead.get(reverse("training:export_detail", args=[project.slug, new.public_id])).content.decode()
    assert "Datasheet" in detail and "train.jsonl" in detail


def test_posts_without_csrf_fail(project, export, as_lead):
    url = reverse("training:curation", args=[project.slug])
    assert as_lead.post(url, {**FORM, "action": "save"}).status_code == 403
    assert not CurationRecipe.objects.filter(name="strict").exists()


def test_download_is_an_attachment_of_a_listed_file_only(project, export, as_lead):
    r = as_lead.get(reverse("training:export_download", args=[project.slug, export.public_id, "train.jsonl"]))
    assert r.status_code == 200 and r["Content-Disposition"].startswith("attachment;")
    assert b"".join(r.streaming_content).count(b"\n") == 6
    for name in ("hf", "../../settings.py", "nothing.jsonl"):
        url = reverse("training:export_download", args=[project.slug, export.public_id, "x"]).replace("/x", "/" + name)
        assert as_lead.get(url).status_code == 404, name


def test_api_saves_previews_and_exports(project, export, lead, outsider):
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(lead)
    base = f"/api/v1/projects/{project.slug}"
    saved = api.post(f"{base}/recipes/", {"name": "api", "config": {"source": "human", "max_pairs_per_prompt": 1}},
                     format="json")  # fmt: skip
    assert saved.status_code == 201 and saved.json()["version"] == 1
    preview = api.post(f"{base}/recipes/preview/", {"source": "judge"}, format="json").json()
    assert preview["rows"] == 0 and preview["funnel"][0]["reasons"] == {"no preference from the source": 6}
    bad = api.post(f"{base}/recipes/", {"name": "x", "config": {"source": "vibes"}}, format="json")
    assert bad.status_code == 400 and "source" in str(bad.json())
    made = api.post(f"{base}/exports/", {"recipe": saved.json()["id"], "format": "dpo", "test_fraction": 0},
                    format="json")  # fmt: skip
    assert made.status_code == 201 and made.json()["rows_train"] == 6 and made.json()["state"] == "succeeded"
    assert api.get(f"{base}/exports/{made.json()['id']}/").json()["content_hash"] == made.json()["content_hash"]
    api.force_authenticate(outsider)
    for url in (f"{base}/recipes/", f"{base}/exports/", f"{base}/exports/{made.json()['id']}/"):
        assert api.get(url).status_code == 404
    assert api.post(f"{base}/recipes/preview/", {}, format="json").status_code == 404
