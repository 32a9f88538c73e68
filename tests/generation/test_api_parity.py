"""What the generation pages do, through the API (issue 21): a generator's page (read and change it), opening a
prompt set for people to rate (and what they said), and calibration answers on candidates."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from generation.models import Candidate, HumanRating
from tests.generation.helpers import endpoint_generator, rated_candidates

pytestmark = pytest.mark.django_db


def api_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


def test_a_generator_reads_and_changes_as_on_its_page(project, lead, annotator):
    generator = endpoint_generator(project, lead, "http://127.0.0.1:9/v1", api_key_env="ARBITER_TEST_GEN_KEY")
    url = reverse("api-generator", args=[project.slug, generator.public_id])
    api = api_for(lead)
    assert api.get(url).json()["model"] == "m"
    changed = api.patch(url, {"model": "m2", "max_concurrency": 2}, format="json")
    assert changed.status_code == 200 and (changed.json()["model"], changed.json()["max_concurrency"]) == ("m2", 2)
    generator.refresh_from_db()
    assert (generator.model, generator.name, generator.api_key_env) == ("m2", "gen", "ARBITER_TEST_GEN_KEY")
    # the service's checks hold: an endpoint generator takes no adapter, a key is named, never given
    for body, field in (({"adapter": "/some/adapter"}, "adapter"), ({"api_key_env": "sk-123 abc"}, "api_key_env")):
        response = api.patch(url, body, format="json")
        assert response.status_code == 400 and field in response.json(), response.json()
    generator.refresh_from_db()
    assert generator.adapter == "" and generator.api_key_env == "ARBITER_TEST_GEN_KEY"
    assert api_for(annotator).get(url).status_code == 404


def test_opening_a_set_for_rating_and_reading_what_people_said(project, lead, annotator, tmp_path):
    prompts, made = rated_candidates(project, lead, tmp_path, [[("One.", None), ("Two.", None)]])
    url = reverse("api-prompt-set-rating", args=[project.slug, prompts.public_id])
    api = api_for(lead)
    assert api.get(url).json() == {"rating_k": 0, "hide_identity_leaks": True, "report": None}
    opened = api.post(url, {"k": 2, "hide_identity_leaks": False}, format="json")
    assert opened.status_code == 200 and (opened.json()["rating_k"], opened.json()["hide_identity_leaks"]) == (2, False)
    HumanRating.objects.create(candidate=made[0], annotator=annotator, up=True, stars=4)
    report = api.get(url).json()["report"]
    assert (report["ratings"], report["thumbs_up_rate"], report["mean_stars"]) == (1, 1.0, 4.0)
    assert api.post(url, {"k": 21}, format="json").status_code == 400
    assert api.post(url, {"k": 0}, format="json").json()["report"] is None  # closed
    assert api_for(annotator).post(url, {"k": 3}, format="json").status_code == 404


def test_calibration_answers_on_candidates(project, lead, annotator, tmp_path):
    _, made = rated_candidates(project, lead, tmp_path, [[("Gold.", None)]])
    url = reverse("api-candidate-gold", args=[project.slug, made[0].pk])
    api = api_for(lead)
    assert api.post(url, {"gold": "up"}, format="json").json() == {"id": made[0].pk, "gold": "up"}
    assert Candidate.objects.get(pk=made[0].pk).gold == "up"
    assert api.post(url, {"gold": "sideways"}, format="json").status_code == 400
    assert api.post(url, {"gold": ""}, format="json").json()["gold"] == ""
    assert api_for(annotator).post(url, {"gold": "down"}, format="json").status_code == 404
    assert Candidate.objects.get(pk=made[0].pk).gold == ""
