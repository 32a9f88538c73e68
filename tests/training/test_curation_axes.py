"""Per-axis preference data: a recipe that takes the human majority of one of the project's criteria (Label.criteria)
instead of the overall choice, through preview, export files and datasheet; validated against the project's criteria;
recipes without one keep their exact config. And a composite (judging.stacking) as a recipe's preference source."""

import json

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from annotation.models import Label
from judging.stacking.services import composite_compute, composite_create
from tests.conftest import csrf, login
from tests.factories import make_pairs
from tests.judging.test_stacking import judge_named, judged, reward_model
from training.curation.candidates import curation_candidates
from training.curation.steps import LEVEL, NONE, ROW_SOURCES, A, B
from training.models import DatasetExport
from training.services.exports import export_create
from training.services.recipes import recipe_preview, recipe_save
from training.storage import export_root

pytestmark = pytest.mark.django_db

# Per pair: three raters' (overall, harmless) choices. Overall always A; harmless says B, A, tie, level, none.
VOTES = [
    [("A", "B"), ("A", "B"), ("A", "A")],  # harmless: B 2-1
    [("A", "A"), ("A", "A"), ("A", "B")],  # harmless: A 2-1
    [("A", "tie"), ("A", "tie"), ("A", "A")],  # harmless: no preference
    [("A", "A"), ("A", "B"), ("A", "both_bad")],  # harmless: level
    [("A", None), ("A", None), ("A", None)],  # imported without criteria: no harmless vote at all
]


@pytest.fixture
def criteria_project(project):
    project.criteria = ["helpful", "harmless"]
    project.save(update_fields=["criteria"])
    pairs = make_pairs(project, len(VOTES))
    for pair, votes in zip(pairs, VOTES, strict=True):
        for i, (overall, harmless) in enumerate(votes):
            criteria = {} if harmless is None else {"helpful": overall, "harmless": harmless}
            Label.objects.create(project=project, pair=pair, source="external", external_annotator=f"r{i}",
                                 choice=overall, criteria=criteria)  # fmt: skip
    return project, pairs


def test_candidates_count_the_criterions_votes(criteria_project):
    project, pairs = criteria_project
    overall = curation_candidates(project)
    assert overall.human_majority.tolist() == [A] * 5 and overall.human_labels.tolist() == [3] * 5
    harmless = curation_candidates(project, criterion="harmless")
    assert harmless.human_majority.tolist()[:4] == [B, A, NONE, LEVEL]
    assert harmless.human_labels.tolist() == [3, 3, 3, 3, 0]
    assert harmless.human_tie.tolist()[2] == 2 and harmless.human_both_bad.tolist()[3] == 1
    assert harmless.human_vote_margin.tolist()[:2] == pytest.approx([-1 / 3, 1 / 3])


def test_a_recipe_on_one_criterion_exports_that_axis(criteria_project, lead):
    project, pairs = criteria_project
    recipe = recipe_save(project=project, name="harmless", config={"source": "human", "criterion": "harmless",
                                                                   "near_duplicates": False}, user=lead)  # fmt: skip
    assert recipe.config["criterion"] == "harmless"
    preview = recipe_preview(project=project, config=recipe.config)
    assert preview["rows"] == 2 and preview["funnel"][0]["removed"] == 2  # level and no votes: no preference
    export = export_create(project=project, recipe=recipe, fmt="dpo", user=lead, test_fraction=0.0, run_now=True)
    assert export.state == DatasetExport.State.SUCCEEDED, export.error
    rows = {r["pair_id"]: r for r in map(json.loads, (export_root() / export.files["train.jsonl"]["path"]).open())}
    assert set(rows) == {pairs[0].pk, pairs[1].pk}
    assert rows[pairs[0].pk]["chosen"] == pairs[0].response_b  # harmless prefers B where the overall choice is A
    assert rows[pairs[1].pk]["chosen"] == pairs[1].response_a
    assert "majority on the criterion `harmless`" in export.datasheet_md
    # The overall choice, for comparison: every pair, A chosen.
    overall = recipe_save(project=project, name="overall", config={"source": "human", "near_duplicates": False},
                          user=lead)  # fmt: skip
    assert recipe_preview(project=project, config=overall.config)["rows"] == 5


def test_the_criterion_must_be_one_of_the_projects(criteria_project, lead):
    project, _ = criteria_project
    with pytest.raises(ValidationError) as caught:
        recipe_save(project=project, name="x", config={"criterion": "funny"}, user=lead)
    assert "criterion" in caught.value.message_dict
    with pytest.raises(ValidationError) as caught:
        recipe_preview(project=project, config={"criterion": "funny"})
    assert "criterion" in caught.value.message_dict
    with pytest.raises(ValidationError) as caught:  # a judge-sourced recipe has no human votes to take it from
        recipe_save(project=project, name="x", config={"source": "judge", "criterion": "harmless"}, user=lead)
    assert "config" in caught.value.message_dict
    # Saved, then the project drops the criterion: exporting it is refused.
    recipe = recipe_save(project=project, name="x", config={"criterion": "harmless"}, user=lead)
    project.criteria = ["helpful"]
    project.save(update_fields=["criteria"])
    with pytest.raises(ValidationError) as caught:
        export_create(project=project, recipe=recipe, fmt="dpo", user=lead, run_now=True)
    assert "recipe" in caught.value.message_dict


def test_recipes_without_a_criterion_keep_their_config(project, lead):
    recipe = recipe_save(project=project, name="plain", config={"source": "human"}, user=lead)
    assert "criterion" not in recipe.config
    assert recipe_save(project=project, name="plain", config={"source": "human", "criterion": ""}, user=lead) == recipe


def test_the_curation_page_offers_the_projects_criteria(criteria_project, lead):
    project, _ = criteria_project
    client = login(lead)
    url = reverse("training:curation", args=[project.slug])
    token = csrf(client, url)
    page = client.get(url).content.decode()
    assert 'name="criterion"' in page and '<option value="harmless">' in page
    form = {"name": "axis", "source": "human", "min_human_agreement": 0, "min_vote_margin": 0, "min_judge_margin": 0,
            "response_similarity": 0.98, "prompt_similarity": 0.95, "seed": 0, "criterion": "harmless",
            "action": "preview"}  # fmt: skip
    preview = client.post(url, form, HTTP_X_CSRFTOKEN=token)
    assert preview.status_code == 200 and preview.context["preview"]["rows"] == 2
    saved = client.post(url, {**form, "action": "save"}, HTTP_X_CSRFTOKEN=token)
    assert saved.status_code == 302
    assert client.post(url, {**form, "criterion": "funny"}, HTTP_X_CSRFTOKEN=token).context["form"].errors["criterion"]


# ---------------------------------------------------------------------------------------------------------------
# a composite as the preference source


@pytest.fixture
def composite_project(project, lead):
    """Six pairs: a judge and a reward model stacked (helpful + harmless ×2); p2 a tie, p5 unjudged, p4 labelled by
    people (who prefer B)."""
    pairs = make_pairs(project, 6)
    llm, rm = judge_named(project, lead, "llm"), reward_model(project, lead, "rm")
    judged(llm, {pairs[0]: 4.0, pairs[1]: -2.0, pairs[2]: 0.0, pairs[3]: 1.0, pairs[4]: 3.0})
    judged(rm, {pairs[0]: 1.0, pairs[1]: -0.5, pairs[2]: 0.0, pairs[3]: 0.25, pairs[4]: 2.0})
    for name in ("x", "y"):
        Label.objects.create(project=project, pair=pairs[4], source="external", external_annotator=name, choice="B")
    axes = [{"name": "helpful", "weight": 1, "scorers": [{"judge": llm.pk, "weight": 1}]},
            {"name": "harmless", "weight": 2, "scorers": [{"judge": rm.pk, "weight": 1}]}]  # fmt: skip
    composite_compute(composite=composite_create(project=project, user=lead, name="hh", axes=axes))
    return project, pairs


def test_a_recipe_takes_its_preferences_from_a_composite(composite_project, lead):
    project, pairs = composite_project
    candidates = curation_candidates(project, composite="hh")
    signed = dict(zip(candidates.pair_id.tolist(), candidates.composite_margin.tolist(), strict=True))
    # |composite| ranks among the five scored pairs: p2 0 (a tie), p3 weakest, then p1, p0, p4 strongest
    assert signed[pairs[2].pk] == 0.0 and signed[pairs[3].pk] == pytest.approx(0.4)
    assert signed[pairs[1].pk] == pytest.approx(-0.6) and signed[pairs[4].pk] == pytest.approx(1.0)
    assert signed[pairs[5].pk] != signed[pairs[5].pk]  # NaN: no score

    config = {"source": "composite", "composite": "hh", "near_duplicates": False}
    recipe = recipe_save(project=project, name="by-composite", config=config, user=lead)
    preview = recipe_preview(project=project, config=recipe.config)
    assert preview["rows"] == 4 and preview["sources"] == {"composite": 4}  # p5 unscored, p2 a tie
    export = export_create(project=project, recipe=recipe, fmt="dpo", user=lead, test_fraction=0.0, run_now=True)
    assert export.state == DatasetExport.State.SUCCEEDED, export.error
    rows = {r["pair_id"]: r for r in map(json.loads, (export_root() / export.files["train.jsonl"]["path"]).open())}
    assert set(rows) == {pairs[i].pk for i in (0, 1, 3, 4)}
    assert rows[pairs[1].pk]["chosen"] == pairs[1].response_b and rows[pairs[0].pk]["chosen"] == pairs[0].response_a
    assert rows[pairs[4].pk]["margin"] == pytest.approx(1.0) and rows[pairs[3].pk]["margin"] == pytest.approx(0.4)
    assert "composite `hh`" in export.datasheet_md

    # People first: p4's labels (B) win over the composite (A).
    humans = recipe_preview(project=project, config={**config, "source": "human_else_composite"})
    assert humans["rows"] == 4 and humans["sources"] == {"composite": 3, "human": 1}
    assert "composite" in ROW_SOURCES


def test_a_composite_recipe_is_validated(composite_project, lead):
    project, _ = composite_project

    def refused(field, config):
        with pytest.raises(ValidationError) as caught:
            recipe_save(project=project, name="x", config=config, user=lead)
        assert field in caught.value.message_dict, caught.value.message_dict

    refused("composite", {"source": "composite", "composite": "nope"})
    refused("config", {"source": "composite"})  # the source needs a composite
    refused("config", {"source": "human", "composite": "hh"})  # a composite needs its sources
    recipe = recipe_save(project=project, name="x", config={"source": "composite", "composite": "hh"}, user=lead)
    project.composites.get().delete()
    with pytest.raises(ValidationError) as caught:
        export_create(project=project, recipe=recipe, fmt="dpo", user=lead, run_now=True)
    assert "recipe" in caught.value.message_dict


def test_the_curation_page_offers_the_projects_composites(composite_project, lead):
    project, _ = composite_project
    client = login(lead)
    url = reverse("training:curation", args=[project.slug])
    token = csrf(client, url)
    assert '<option value="hh">' in client.get(url).content.decode()
    form = {"name": "c", "source": "composite", "min_human_agreement": 0, "min_vote_margin": 0, "min_judge_margin": 0,
            "response_similarity": 0.98, "prompt_similarity": 0.95, "seed": 0, "composite": "hh",
            "action": "preview"}  # fmt: skip
    preview = client.post(url, form, HTTP_X_CSRFTOKEN=token)
    assert preview.status_code == 200 and preview.context["preview"]["rows"] == 4
    missing = client.post(url, {**form, "composite": ""}, HTTP_X_CSRFTOKEN=token)
    assert missing.status_code == 200 and missing.context["preview"] is None
    assert "need one" in str(missing.context["form"].non_field_errors())
