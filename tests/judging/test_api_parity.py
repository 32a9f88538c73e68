"""What the judge pages do, through the API (issue 21): a judge's page (read and change it, prompt versions
included), sharing a judge on creation, changing a composite, and a run's verdicts as JSONL."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from judging.models import CompositeScore, JudgeConfig, JudgeRun, PairJudgement, PromptVersion, Verdict
from judging.services import judge_create, reward_model_create
from judging.stacking.services import composite_compute, composite_create
from tests.factories import UserFactory, make_pairs

pytestmark = pytest.mark.django_db
URL = "https://api.example.com/v1"
TEMPLATE = "{guidelines} {criteria} {prompt} A: {response_a} B: {response_b}"


def api_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


@pytest.fixture
def judge(project, lead):
    return judge_create(project=project, user=lead, name="gpt", base_url=URL, model="gpt-4o-mini",
                        api_key_env="ARBITER_TEST_JUDGE_KEY")  # fmt: skip


def judge_url(project, judge) -> str:
    return reverse("api-judge", args=[project.slug, judge.public_id])


def test_a_judge_reads_and_changes_as_on_its_page(project, lead, judge, annotator):
    api = api_for(lead)
    shown = api.get(judge_url(project, judge)).json()
    assert shown["name"] == "gpt" and shown["prompt"]["version"] == 1 and "{response_a}" in shown["prompt"]["template"]
    JudgeConfig.objects.filter(pk=judge.pk).update(response_mode="json_schema")

    changed = api.patch(judge_url(project, judge), {"model": "gpt-4.1", "template": TEMPLATE}, format="json")
    assert changed.status_code == 200, changed.json()
    assert changed.json()["model"] == "gpt-4.1" and changed.json()["prompt"] == {
        "version": 2, "system": shown["prompt"]["system"], "template": TEMPLATE}  # fmt: skip
    judge.refresh_from_db()
    assert judge.response_mode == "" and judge.name == "gpt"  # a new model forgets the detected format
    # the same text again makes no version; a bad template changes nothing, settings included
    assert api.patch(judge_url(project, judge), {"template": TEMPLATE}, format="json").json()["prompt"]["version"] == 2
    bad = api.patch(judge_url(project, judge), {"temperature": 0.9, "template": "no placeholders"}, format="json")
    assert bad.status_code == 400 and "template" in bad.json()
    judge.refresh_from_db()
    assert judge.temperature == 0.0 and PromptVersion.objects.filter(judge=judge).count() == 2
    for body, field in (
        ({"kind": "reward_model"}, "kind"),
        ({"shared": True}, "shared"),
        ({"adapter": "/x"}, "detail"),
    ):
        response = api.patch(judge_url(project, judge), body, format="json")
        assert response.status_code == 400 and field in response.json(), response.json()
    assert api_for(annotator).get(judge_url(project, judge)).status_code == 404


def test_a_reward_model_changes_its_name_only(project, lead):
    rm = reward_model_create(project=project, user=lead, name="rm", model="acme/reward-1b")
    api = api_for(lead)
    assert api.get(judge_url(project, rm)).json()["prompt"] is None
    assert api.patch(judge_url(project, rm), {"name": "rm-2"}, format="json").json()["name"] == "rm-2"
    for body in ({"model": "acme/other"}, {"template": TEMPLATE}, {"temperature": 0.5}):
        assert api.patch(judge_url(project, rm), body, format="json").status_code == 400, body
    rm.refresh_from_db()
    assert (rm.name, rm.model) == ("rm-2", "acme/reward-1b")


def test_shared_judges_are_created_and_changed_by_admins_only(project, lead):
    admin = UserFactory(username="judge-admin", is_staff=True)
    body = {"name": "shared", "base_url": URL, "model": "m", "shared": True}
    refused = api_for(lead).post(reverse("api-judges", args=[project.slug]), body, format="json")
    assert refused.status_code == 400 and "shared" in refused.json()
    made = api_for(admin).post(reverse("api-judges", args=[project.slug]), body, format="json")
    assert made.status_code == 201 and made.json()["shared"] is True
    shared = JudgeConfig.objects.get(name="shared")
    assert shared.project is None
    own = api_for(lead).post(reverse("api-judges", args=[project.slug]), {**body, "name": "own", "shared": False},
                             format="json")  # fmt: skip
    assert own.json()["shared"] is False and JudgeConfig.objects.get(name="own").project == project

    assert api_for(lead).get(judge_url(project, shared)).json()["shared"] is True  # leads see it
    assert api_for(lead).patch(judge_url(project, shared), {"model": "x"}, format="json").status_code == 403
    assert api_for(admin).patch(judge_url(project, shared), {"model": "x"}, format="json").status_code == 200
    shared.refresh_from_db()
    assert shared.model == "x" and shared.project is None


def test_a_composite_changes_and_drops_its_stale_scores(project, lead, judge):
    pair = make_pairs(project, 1)[0]
    PairJudgement.objects.create(pair=pair, judge=judge, prompt_version=judge.prompt_versions.get(), winner="A",
                                 consistent=True, margin=2.0, orders=2)  # fmt: skip
    axes = [{"name": "helpful", "weight": 1, "scorers": [{"judge": judge.pk, "weight": 1}]}]
    composite = composite_compute(composite=composite_create(project=project, user=lead, name="c", axes=axes))
    url = reverse("api-composite", args=[project.slug, composite.public_id])
    api = api_for(lead)
    renamed = api.patch(url, {"name": "c2"}, format="json")
    assert renamed.status_code == 200 and renamed.json()["name"] == "c2" and CompositeScore.objects.count() == 1
    new_axes = [{"name": "honest", "scorers": [{"judge": str(judge.public_id), "weight": 2}]}]
    changed = api.patch(url, {"axes": new_axes, "normalisation": "rank"}, format="json").json()
    scorer = {"judge": str(judge.public_id), "name": "gpt", "weight": 2.0}
    assert changed["axes"] == [{"name": "honest", "weight": 1.0, "scorers": [scorer]}]
    assert changed["normalisation"] == "rank" and changed["pairs"] is None and not CompositeScore.objects.exists()
    bad = api.patch(url, {"axes": [{"name": "x", "scorers": [{"judge": "nobody"}]}]}, format="json")
    assert bad.status_code == 400 and "axes" in bad.json()


def test_a_runs_verdicts_stream_as_jsonl(project, lead, judge, annotator):
    pairs = make_pairs(project, 2)
    version = judge.prompt_versions.get()
    run = JudgeRun.objects.create(project=project, judge=judge, prompt_version=version, pair_ids=[pairs[0].pk],
                                  requests_planned=2, created_by=lead)  # fmt: skip
    for pair, order, winner in ((pairs[0], "ba", "B"), (pairs[0], "ab", "A"), (pairs[1], "ab", "A")):
        Verdict.objects.create(pair=pair, judge=judge, prompt_version=version, run=run, order=order, status="ok",
                               winner=winner, winner_slot="first", rationale=f"{order} reason",
                               raw=json.dumps({"winner": winner}))  # fmt: skip
    url = reverse("api-judge-run-verdicts", args=[project.slug, run.public_id])
    response = api_for(lead).get(url)
    assert response.status_code == 200 and response["Content-Type"] == "application/jsonl"
    rows = [json.loads(line) for line in b"".join(response.streaming_content).splitlines()]
    assert [(r["pair_id"], r["order"], r["winner"]) for r in rows] == [
        (pairs[0].pk, "ab", "A"),
        (pairs[0].pk, "ba", "B"),
    ]
    assert rows[0]["pair__external_id"] == pairs[0].external_id and rows[0]["rationale"] == "ab reason"
    assert api_for(annotator).get(url).status_code == 404
