"""The demo `make run` shows: users for every role, a project written by the project with labels from simulated
annotators whose habits the quality report finds, a judge on the local model, a recipe and an export. Running it
again changes nothing, and nothing outside the demo is touched."""

import pytest
import redis
from django.contrib.auth import get_user_model
from django.core.management import call_command

from annotation.models import Assignment, Label, Membership, Pair, Project
from annotation.selectors import project_quality
from generation.models import GenerationRun, Generator, Prompt, PromptSet
from judging.models import Composite, JudgeConfig, JudgeRun
from tests.factories import ProjectFactory, make_pairs
from training.models import CurationRecipe, DatasetExport

pytestmark = pytest.mark.django_db

COUNTED = (get_user_model(), Project, Membership, Pair, Assignment, Label, JudgeConfig, JudgeRun, CurationRecipe,
           DatasetExport, PromptSet, Prompt, Generator, GenerationRun, Composite)  # fmt: skip


def snapshot() -> dict:
    return {model.__name__: model.objects.count() for model in COUNTED}


def test_without_the_demo_the_judge_run_command_does_nothing():
    call_command("demo_local_runs")
    assert not JudgeRun.objects.exists() and not GenerationRun.objects.exists()


@pytest.mark.redis
def test_the_demo_shows_every_page_with_true_content_and_a_second_run_changes_nothing(settings):
    project = ProjectFactory(slug="mine")  # someone's own project, beside the demo
    untouched = make_pairs(project, 3)
    Label.objects.create(project=project, pair=untouched[0], source="external", external_annotator="x", choice="A")
    mine = list(Pair.objects.filter(project=project).order_by("pk").values_list("pk", "label_count", "open_slots"))

    call_command("demo_setup")
    demo = Project.objects.get(slug="demo")
    users = {u.username: u for u in get_user_model().objects.filter(username__startswith="demo-")}
    assert users["demo-admin"].is_staff and not users["demo-lead"].is_staff
    assert Membership.objects.get(project=demo, user=users["demo-lead"]).role == "lead"
    assert Pair.objects.filter(project=demo).count() >= 300 and Pair.objects.filter(project=demo).exclude(gold="")
    assert users["demo-annotator-1"].check_password("arbiter-demo")

    report = project_quality(demo, n_boot=20)
    rows = report["per_annotator"]
    # How many labels the left-clicker gives before the automatic pause stops it depends on when calibration pairs
    # come up (the assignment order is not seeded): 16 straight left picks (p 1.5e-5) were seen, so the bound is
    # loose on purpose; the rate is exact.
    assert rows["demo-sim-leftclicker"]["left_pick_rate"] == 1.0
    assert rows["demo-sim-leftclicker"]["left_pick_p_value"] < 1e-2, rows["demo-sim-leftclicker"]
    assert rows["demo-sim-speedy"]["implausibly_fast"] and not rows["demo-sim-careful"]["implausibly_fast"]
    assert rows["demo-sim-drifting"]["paused"] and not rows["demo-sim-careful"]["paused"], {
        n: r["paused_reason"] for n, r in rows.items()
    }
    assert rows["demo-sim-careful"]["gold_accuracy"] > rows["demo-sim-drifting"]["gold_accuracy"]
    kappas = [row for row in report["pairwise_cohen_kappa"] if row["kappa"] is not None]
    assert len({name for row in kappas for name in (row["annotator_a"], row["annotator_b"])}) >= 3
    assert max(row["kappa"] for row in kappas) > 0.4  # the careful annotators agree; the others do not
    assert Pair.objects.filter(project=demo, open_slots__gt=0).count() >= 50  # work left for the people who log in

    judge, rater, reward_model = JudgeConfig.objects.filter(project=demo).order_by("pk")
    assert reward_model.kind == "reward_model" and reward_model.model == str(settings.LOCAL_MODEL_PATH)
    composite = Composite.objects.get(project=demo)
    assert [s["judge"] for s in composite.axes[0]["scorers"]] == [judge.pk, reward_model.pk]
    assert judge.base_url == settings.LOCAL_MODEL_URL and not JudgeRun.objects.exists()  # runs when the model is up
    assert rater.base_url == settings.LOCAL_MODEL_URL and rater.temperature == 2.0  # for campaigns' best-vs-worst
    generator = Generator.objects.get(project=demo)
    assert generator.base_url == settings.LOCAL_MODEL_URL and not GenerationRun.objects.exists()
    prompts = PromptSet.objects.get(project=demo)
    assert prompts.prompts_created == 12 and prompts.rating_k == 2
    assert prompts.prompts.first().metadata == {"task_type": "fact", "difficulty": "easy"}
    export = DatasetExport.objects.get(project=demo)
    assert export.state == "succeeded" and export.rows_train > 0 and export.recipe.name == "demo"
    assert CurationRecipe.objects.get(project=demo, name="campaign: by scores").config["source"] == "scores"

    first = snapshot()
    call_command("demo_setup")
    assert snapshot() == first

    # when the local model is ready, `make run` starts the judge's and the generator's first small runs, once each:
    # two messages on the broker's judge queue, one on the gpu queue (no worker here: the test takes them off again)
    queue = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    before, gpu_before = queue.llen("judge"), queue.llen("gpu")
    call_command("demo_local_runs")
    call_command("demo_local_runs")
    assert queue.llen("judge") == before + 2 and len(JudgeRun.objects.get(judge=judge).pair_ids) == 12
    # the reward model scores every pair on the gpu queue, once
    assert queue.llen("gpu") == gpu_before + 1
    assert len(JudgeRun.objects.get(judge=reward_model).pair_ids) == Pair.objects.filter(project=demo).count()
    queue.lpop("gpu")
    generation = GenerationRun.objects.get()
    assert generation.rater == judge and len(generation.prompt_ids) == 6 and generation.requests_planned == 12
    queue.lpop("judge")  # kombu pushes on the left
    queue.lpop("judge")
    assert (
        list(Pair.objects.filter(project=project).order_by("pk").values_list("pk", "label_count", "open_slots")) == mine
    )


def test_a_project_of_someone_else_named_demo_is_left_alone(project):
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="is not the demo"):
        call_command("demo_setup")  # the shared fixture's project has the slug "demo"
    assert not Pair.objects.filter(project=project).exists()


def test_the_demo_is_refused_in_production(settings):
    from django.core.management import CommandError

    settings.PRODUCTION = True
    with pytest.raises(CommandError, match="production"):
        call_command("demo_setup")
    assert not Project.objects.filter(slug="demo").exists()
