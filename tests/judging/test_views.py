"""Judge pages, API and command: leads only (404 for everyone else), CSRF on, keys never shown."""

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from rest_framework.test import APIClient

from judging.models import JudgeConfig, JudgeRun, PromptVersion
from judging.services import judge_create
from tests.conftest import csrf, login
from tests.factories import ProjectFactory, UserFactory, make_pairs, member

pytestmark = pytest.mark.django_db
SECRET = "sk-live-never-show-me-0123456789"


@pytest.fixture
def judge(project, lead, monkeypatch):
    monkeypatch.setenv("ARBITER_TEST_JUDGE_KEY", SECRET)
    return judge_create(project=project, user=lead, name="gpt", base_url="https://api.example.com/v1",
                        model="gpt-4o-mini", api_key_env="ARBITER_TEST_JUDGE_KEY")  # fmt: skip


@pytest.fixture
def run(project, judge, lead):
    pairs = make_pairs(project, 2)
    return JudgeRun.objects.create(project=project, judge=judge, prompt_version=judge.prompt_versions.get(),
                                   pair_ids=[p.pk for p in pairs], requests_planned=4, created_by=lead)  # fmt: skip


def urls(project, judge, run):
    return [
        reverse("judging:judges", args=[project.slug]),
        reverse("judging:judge_new", args=[project.slug]),
        reverse("judging:judge_edit", args=[project.slug, judge.public_id]),
        reverse("judging:run_detail", args=[project.slug, run.public_id]),
        f"/api/v1/projects/{project.slug}/judges/",
        f"/api/v1/projects/{project.slug}/judge-runs/",
        f"/api/v1/projects/{project.slug}/judge-runs/{run.public_id}/",
    ]


@pytest.mark.parametrize("who", ["annotator", "outsider", "other_lead"])
def test_everything_is_404_for_all_but_the_projects_leads(project, judge, run, annotator, outsider, who):
    user = {"annotator": annotator, "outsider": outsider}.get(who)
    if who == "other_lead":
        user = UserFactory()
        member(ProjectFactory(), user, "lead")
    client = login(user)
    for url in urls(project, judge, run):
        assert client.get(url).status_code == 404, url
    token = csrf(client)
    action = reverse("judging:run_action", args=[project.slug, run.public_id, "cancel"])
    assert client.post(action, HTTP_X_CSRFTOKEN=token).status_code == 404
    api = APIClient()
    api.force_authenticate(user)
    assert api.post(f"/api/v1/projects/{project.slug}/judge-runs/", {"judge": str(judge.public_id)}).status_code == 404
    assert JudgeRun.objects.get(pk=run.pk).state == "queued"


def test_pages_and_api_never_show_the_api_key(project, judge, run, as_lead, lead):
    for url in urls(project, judge, run):
        body = as_lead.get(url).content.decode()
        assert SECRET not in body, url
    assert "ARBITER_TEST_JUDGE_KEY" in as_lead.get(reverse("judging:judges", args=[project.slug])).content.decode()


def test_lead_creates_a_judge_and_a_template_edit_makes_a_new_prompt_version(project, as_lead):
    url = reverse("judging:judge_new", args=[project.slug])
    token = csrf(as_lead, url)
    data = {"name": "local", "base_url": "http://127.0.0.1:8080/v1", "model": "smollm2", "api_key_env": "",
            "temperature": 0, "max_tokens": 256, "price_input_per_m": 0, "price_output_per_m": 0,
            "max_concurrency": 2, "requests_per_minute": 60, "both_orders": "on", "system": "Judge fairly.",
            "template": "{prompt}\nA: {response_a}\nB: {response_b}"}  # fmt: skip
    assert as_lead.post(url, data, HTTP_X_CSRFTOKEN=token).status_code == 302
    judge = JudgeConfig.objects.get(name="local")
    assert judge.project == project and judge.prompt_versions.count() == 1
    edit = reverse("judging:judge_edit", args=[project.slug, judge.public_id])
    assert (
        as_lead.post(edit, {**data, "template": data["template"] + "\nBe brief."}, HTTP_X_CSRFTOKEN=token).status_code
        == 302
    )
    assert list(PromptVersion.objects.filter(judge=judge).values_list("version", flat=True)) == [2, 1]
    # a template without the responses is refused and changes nothing
    r = as_lead.post(edit, {**data, "template": "no placeholders"}, HTTP_X_CSRFTOKEN=token)
    assert r.status_code == 200 and "{response_a}" in r.content.decode()
    assert judge.prompt_versions.count() == 2


def test_a_key_itself_is_refused_where_a_variable_name_belongs(project, as_lead):
    url = reverse("judging:judge_new", args=[project.slug])
    token = csrf(as_lead, url)
    data = {"name": "oops", "base_url": "https://api.example.com/v1", "model": "m", "api_key_env": "sk-abc-123",
            "temperature": 0, "max_tokens": 256, "price_input_per_m": 0, "price_output_per_m": 0,
            "max_concurrency": 2, "requests_per_minute": 60, "system": "s",
            "template": "{prompt}{response_a}{response_b}"}  # fmt: skip
    assert as_lead.post(url, data, HTTP_X_CSRFTOKEN=token).status_code == 200
    assert not JudgeConfig.objects.filter(name="oops").exists()


def test_posts_without_csrf_fail(project, judge, run, as_lead):
    action = reverse("judging:run_action", args=[project.slug, run.public_id, "cancel"])
    assert as_lead.post(action).status_code == 403
    assert JudgeRun.objects.get(pk=run.pk).state == "queued"


def test_pause_resume_cancel_from_the_page(project, judge, run, as_lead):
    token = csrf(as_lead)

    def act(name):
        return as_lead.post(reverse("judging:run_action", args=[project.slug, run.public_id, name]),
                            HTTP_X_CSRFTOKEN=token)  # fmt: skip

    act("pause")
    assert JudgeRun.objects.get(pk=run.pk).state == "paused"
    act("cancel")
    assert JudgeRun.objects.get(pk=run.pk).state == "cancelled"
    act("resume")  # a cancelled run stays cancelled
    assert JudgeRun.objects.get(pk=run.pk).state == "cancelled"
    assert act("explode").status_code == 404


def test_api_starts_a_run_on_the_queue(project, judge, lead):
    make_pairs(project, 3)
    api = APIClient()
    api.force_authenticate(lead)
    r = api.post(f"/api/v1/projects/{project.slug}/judge-runs/", {"judge": str(judge.public_id), "limit": 2},
                 format="json")  # fmt: skip
    assert r.status_code == 202, r.content
    assert r.json()["pairs"] == 2 and r.json()["requests_planned"] == 4 and r.json()["state"] == "queued"
    detail = api.get(f"/api/v1/projects/{project.slug}/judge-runs/{r.json()['id']}/").json()
    assert detail["report"] is None and SECRET not in str(detail)


def test_command_starts_a_run_or_says_what_is_wrong(project, judge):
    make_pairs(project, 2)
    with pytest.raises(CommandError, match="gpt"):
        call_command("judge_project", project.slug, "--judge", "nope")
    out = io.StringIO()
    call_command("judge_project", project.slug, "--judge", "gpt", "--limit", "1", stdout=out)
    assert "1 pairs, 2 verdicts planned" in out.getvalue()
    assert JudgeRun.objects.get().pair_ids
