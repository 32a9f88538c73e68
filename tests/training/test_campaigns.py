"""Campaigns without workers: the rounds' prompt batches, the length-exploitation warning, what campaign_create refuses
(naming the field, creating nothing), curating pairs by their candidates' scores, a scoped export, resume and cancel
of a failed round, the stop rules, and the launch command's errors. The end-to-end run is test_campaign_worker.py."""

from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import CommandError, call_command

from generation.models import Candidate, Prompt, PromptSet
from generation.pairing import Options
from generation.services import pairs_build
from judging.services import judge_create
from tests.generation.helpers import prompt_set, rated_candidates
from training.campaigns.batches import split_batches
from training.campaigns.control import campaign_cancel, campaign_create, campaign_resume
from training.campaigns.flow import stop_reason
from training.campaigns.report import length_warnings
from training.models import Campaign, CampaignRound
from training.services.exports import export_create
from training.services.recipes import recipe_preview, recipe_save

pytestmark = pytest.mark.django_db


def test_batches_are_disjoint_unless_reuse_is_asked_for():
    assert split_batches(list(range(10)), per_round=3, rounds=3) == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    with pytest.raises(ValueError, match="3 rounds of 4 prompts need 12 prompts; the pool has 10"):
        split_batches(list(range(10)), per_round=4, rounds=3)
    assert split_batches(list(range(5)), per_round=3, rounds=3, reuse=True) == [[0, 1, 2], [3, 4, 0], [1, 2, 3]]


def _row(number, length, lc, change=None):
    return {"round": number, "vs_base": {"mean_length_candidate": length, "lc_win_rate": lc,
                                         "mean_length_change": change}}  # fmt: skip


def test_length_growing_faster_than_lc_win_rate_is_warned():
    # round 1: 100 -> 120 chars (+20%) while LC went 0.5 -> 0.6 (+20%): fine; round 2: +50% length, LC +5%: warned
    rows = [_row(1, 120, 0.6, change=20), _row(2, 180, 0.63), _row(3, 185, 0.70)]
    warnings = length_warnings(rows)
    assert len(warnings) == 1 and warnings[0].startswith("Round 2: answers grew +50%")
    assert not length_warnings([_row(1, 100, 0.5, change=0)])


@pytest.fixture
def admin(db):
    from tests.factories import UserFactory

    return UserFactory(username="boss", is_staff=True)


@pytest.fixture
def world(project, lead, tmp_path, settings):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    judge = judge_create(project=project, user=lead, name="j", base_url="http://127.0.0.1:9/v1", model="m")
    pool = prompt_set(project, lead, tmp_path, n=10, name="pool")
    recipe = recipe_save(project=project, name="scores", config={"source": "scores"}, user=lead)
    return {"project": project, "base_model": str(model), "judge": judge, "prompt_set": pool, "recipe": recipe}


def test_create_refuses_bad_settings_by_field_and_creates_nothing(world, admin, lead):
    sets = PromptSet.objects.count()
    cases = [
        ({"per_round": 4, "rounds": 3}, "per_round", "need 12 prompts; the pool has 7"),  # 3 held out of 10
        ({"plan": {"samples": 1}}, "plan", "sample at least 2"),
        ({"plan": {"temperatures": [3]}}, "temperatures", "from 0 to 2"),
        ({"judge": None}, "judge", "choose a judge"),
        ({"base_model": "/nowhere/model"}, "base_model", "no such model folder"),
        ({"settings_": {"betta": 0.1}}, "settings", "unknown training settings: betta"),
        ({"pairing": {"strategy": "best"}}, "pairing", "strategy must be one of"),
        ({"eval_prompts": 10}, "eval_prompts", "has 10 prompts"),
        ({"stop_win_rate": 1.5}, "stop_win_rate", "between 0 and 1"),
        ({"preset": "reward-lora"}, "preset", "a reward model does not generate"),
    ]
    for change, field, message in cases:
        values = {**world, "name": "c", "per_round": 2, "rounds": 2, "eval_prompts": 3, **change}
        with pytest.raises(ValidationError) as caught:
            campaign_create(user=admin, **values)
        errors = caught.value.message_dict
        assert field in errors and message in " ".join(errors[field]), (field, errors)
    with pytest.raises(PermissionDenied):
        campaign_create(user=lead, name="c", per_round=2, rounds=2, eval_prompts=3, **world)
    assert not Campaign.objects.exists() and PromptSet.objects.count() == sets


def test_create_holds_out_the_pools_last_prompts_and_splits_the_rest(world, admin, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as queued:
        campaign = campaign_create(user=admin, name="c", per_round=3, rounds=2, eval_prompts=3, **world)
    assert len(queued) == 1  # round 1 starts once the campaign is committed
    pool = list(Prompt.objects.filter(prompt_set=world["prompt_set"]).order_by("pk"))
    held = [p.text for p in Prompt.objects.filter(prompt_set=campaign.eval_prompt_set).order_by("pk")]
    assert held == [p.text for p in pool[-3:]]
    assert campaign.batches == [[p.pk for p in pool[:3]], [p.pk for p in pool[3:6]]]
    assert campaign.plan["samples"] == 4 and campaign.pairing["strategy"] == "best_worst"
    assert list(campaign.round_set.values_list("number", "stage", "state")) == [(1, "generate", "running")]


def test_pairs_curated_by_their_scores_and_an_export_scoped_to_them(project, lead, tmp_path):
    prompts, _ = rated_candidates(project, lead, tmp_path, [[("long answer", 8), ("short", 3)],
                                                             [("alpha", 5), ("beta", 6)]])  # fmt: skip
    built = pairs_build(prompt_set=prompts, options=Options(strategy="best_worst", min_margin=1), user=lead,
                        open_slots=0)  # fmt: skip
    assert built.created == 2
    pairs = list(project.pairs.order_by("pk"))
    assert all(p.open_slots == 0 for p in pairs)  # closed to people: the scores label them
    preview = recipe_preview(project=project, config={"source": "scores"})
    assert preview["rows"] == 2 and preview["sources"] == {"scores": 2}
    assert recipe_preview(project=project, config={"source": "human"})["rows"] == 0
    recipe = recipe_save(project=project, name="s", config={"source": "scores"}, user=lead)
    export = export_create(project=project, recipe=recipe, fmt="dpo", user=lead, test_fraction=0.0, run_now=True,
                           pair_ids=[pairs[0].pk])  # fmt: skip
    assert export.rows_train == 1 and export.pair_ids == [pairs[0].pk]
    assert pairs[0].response_a == Candidate.objects.get(text="long answer").text  # A: the higher score, chosen


def test_resume_and_cancel_of_a_failed_round(world, admin, django_capture_on_commit_callbacks, monkeypatch):
    sent = []
    monkeypatch.setattr("training.campaigns.control.campaign_advance_task.delay", sent.append)
    with django_capture_on_commit_callbacks(execute=False):
        campaign = campaign_create(user=admin, name="c", per_round=2, rounds=2, eval_prompts=3, **world)
    round_ = campaign.round_set.get()
    Campaign.objects.filter(pk=campaign.pk).update(state="failed", error="Round 1, generate: boom")
    CampaignRound.objects.filter(pk=round_.pk).update(state="failed", error="boom")
    campaign = campaign_resume(campaign=Campaign.objects.get(pk=campaign.pk), user=admin)
    assert campaign.state == "running" and not campaign.error and sent == [campaign.pk]
    assert campaign.round_set.get().state == "running"
    campaign = campaign_cancel(campaign=campaign)
    assert campaign.state == "cancelled" and campaign.round_set.get().state == "cancelled"
    assert campaign_resume(campaign=campaign, user=admin).state == "cancelled"  # a cancelled campaign stays so
    assert sent == [campaign.pk]


def test_stop_rules(world, admin, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        campaign = campaign_create(user=admin, name="c", per_round=2, rounds=3, eval_prompts=3, stop_win_rate=0.55,
                                   stop_kl=5, budget_usd=Decimal("1"), **world)  # fmt: skip
    round_ = campaign.round_set.get()
    round_.number = 2
    round_.report = {"vs_previous": {"win_rate": 0.5}, "kl": 1.0}
    assert "won 50% against round 1, below the 55%" in stop_reason(campaign, round_)
    round_.report = {"vs_previous": {"win_rate": 0.6}, "kl": 6.0}
    assert "KL from the base is 6" in stop_reason(campaign, round_)
    round_.report = {"vs_previous": {"win_rate": 0.6}, "kl": 1.0}
    assert stop_reason(campaign, round_) == ""


def test_launch_command_names_what_is_missing(world, admin):
    with pytest.raises(CommandError, match="--recipe: none of that name"):
        call_command(
            "launch_campaign",
            world["project"].slug,
            "--name",
            "c",
            "--prompt-set",
            "pool",
            "--recipe",
            "nope",
            "--judge",
            "j",
            "--base-model",
            world["base_model"],
            "--user",
            admin.username,
        )
    with pytest.raises(CommandError, match="per_round: 3 rounds of 50 prompts"):
        call_command(
            "launch_campaign",
            world["project"].slug,
            "--name",
            "c",
            "--prompt-set",
            "pool",
            "--recipe",
            "scores",
            "--judge",
            "j",
            "--base-model",
            world["base_model"],
            "--user",
            admin.username,
            "--per-round",
            "50",
            "--eval-prompts",
            "3",
        )


def test_api_launches_by_name_and_refuses_unknown_names_by_field(
    world, admin, lead, django_capture_on_commit_callbacks
):
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(admin)
    url = f"/api/v1/projects/{world['project'].slug}/campaigns/"
    body = {"name": "c", "prompt_set": "pool", "recipe": world["recipe"].pk, "judge": "j",
            "base_model": world["base_model"], "rounds": 2, "per_round": 2, "eval_prompts": 3}  # fmt: skip
    for field, wrong in (("prompt_set", "nope"), ("judge", "nope"), ("recipe", 999999)):
        response = api.post(url, {**body, field: wrong}, format="json")
        assert response.status_code == 400 and field in response.json(), response.content
    assert not Campaign.objects.exists()
    with django_capture_on_commit_callbacks(execute=False):
        response = api.post(url, {**body, "plan": {"samples": 3}}, format="json")
    assert response.status_code == 202, response.content
    campaign = Campaign.objects.get()
    assert campaign.plan["samples"] == 3 and campaign.judge == world["judge"] and len(campaign.batches) == 2
    api.force_authenticate(lead)  # the project's lead reads it, with its report, and cannot launch
    assert api.get(url).json()[0]["name"] == "c"
    detail = api.get(f"/api/v1/training/campaigns/{campaign.public_id}/").json()
    assert detail["report"]["rows"] == [] and detail["round_details"][0]["stage"] == "generate"
    assert api.post(url, body, format="json").status_code == 404
