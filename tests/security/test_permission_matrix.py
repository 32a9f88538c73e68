"""The permission matrix (tests/security/permission_matrix.py) as tests: every (route, method, role) gets the answer
the matrix says, every named route is in the matrix, another project's slug or ids never reach this project's objects,
and nothing an annotator's browser or API client receives names models, gold answers, other people's labels, judge
verdicts, exports or training jobs.

The world is built once per module inside a transaction that is rolled back at the end; each test runs in a savepoint
of it (pytest-django's django_db), so a POST that changes something is undone before the next test."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import transaction
from django.test import Client, override_settings
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from annotation.models import Assignment, GuidelineVersion, ImportBatch, Label, Membership, Pair
from generation.imports import prompts_import
from generation.models import Candidate, GenerationRun
from generation.plan import plan_clean
from generation.services import generator_create, rating_open
from judging.models import JudgeConfig, JudgeRun, PairJudgement, Verdict
from judging.services import judge_create
from judging.stacking.services import composite_compute, composite_create
from tests.conftest import csrf
from tests.factories import ProjectFactory, UserFactory, make_pairs, member
from tests.security.permission_matrix import (
    ADMIN,
    ANNOTATOR,
    ANONYMOUS,
    EXEMPT,
    EXEMPT_NAMESPACES,
    EXEMPT_PREFIXES,
    GET_OK,
    LEAD,
    LOGGED_IN,
    OTHER_ANNOTATOR,
    OTHER_LEAD,
    OUTSIDER,
    POST_OK,
    ROLES,
    ROUTES,
    Route,
)
from tests.training.conftest import labelled_export
from training.models import Campaign, CampaignRound, DatasetExport, Evaluation, Sweep, TrainingJob
from training.services.jobs import job_create
from training.services.recipes import recipe_save

pytestmark = pytest.mark.django_db

# Strings that exist in the world but must never reach an annotator (see test_annotator_sees_nothing_it_should_not).
GOLD_EXPLANATION = "Calibration-explanation-zq81"
SECOND_ANNOTATOR = "second-annotator-kx52"
SECOND_RATIONALE = "Rationale-of-second-annotator-kx52"
EXTERNAL_RATER = "external-rater-q9"
JUDGE_NAME = "judge-name-vr7"
JUDGE_MODEL = "judge-model-vr7"
JUDGE_URL = "https://judge-vr7.example.com/v1"
GENERATOR_NAME = "generator-name-vr7"
GENERATOR_MODEL = "generator-model-vr7"
VERDICT_RATIONALE = "Verdict-rationale-vr7"
SHARED_JUDGE = "shared-judge-vr7"
COMPOSITE_NAME = "composite-name-vr7"
FORBIDDEN_PATHS = ("/exports/", "/curation/", "/training/", "/judges/", "/judge-runs/", "/quality/", "/pairs/",
                   "/members/", "/imports/", "/settings/")  # fmt: skip
FORBIDDEN_KEYS = {"gold", "gold_explanation", "model_a", "model_b", "pair", "pair_id", "labels", "label_count",
                  "verdicts", "judge", "winner", "annotator", "annotators", "consensus"}  # fmt: skip


@dataclass
class World:
    users: dict  # role -> user (no entry for ANONYMOUS)
    project: object
    other_project: object
    url_kwargs: dict  # URL kwarg name -> value, for this project's objects
    gold_pair: Pair
    other_judge: object
    other_recipe: object
    shared_judge: object  # an admin's judge shared with every project
    secrets: list = field(default_factory=list)  # values an annotator must never receive


def _build_world(root: Path) -> World:
    users = {
        OUTSIDER: UserFactory(username="m-outsider"),
        OTHER_ANNOTATOR: UserFactory(username="m-other-annotator"),
        OTHER_LEAD: UserFactory(username="m-other-lead"),
        ANNOTATOR: UserFactory(username="m-annotator"),
        LEAD: UserFactory(username="m-lead"),
        ADMIN: UserFactory(username="m-admin", is_staff=True),
    }
    second = UserFactory(username=SECOND_ANNOTATOR)
    project = ProjectFactory(slug="acme-prefs", name="Acme preferences")
    member(project, users[LEAD], Membership.Role.LEAD)
    member(project, users[ANNOTATOR], Membership.Role.ANNOTATOR)
    member(project, second, Membership.Role.ANNOTATOR)
    other = ProjectFactory(slug="rival-prefs", name="Rival preferences")
    member(other, users[OTHER_LEAD], Membership.Role.LEAD)
    member(other, users[OTHER_ANNOTATOR], Membership.Role.ANNOTATOR)

    # Pairs to annotate; the first is a calibration (gold) pair that the annotator holds, labelled by the second
    # annotator and an imported rater, and judged.
    pairs = make_pairs(project, 4)
    gold = pairs[0]
    Pair.objects.filter(pk=gold.pk).update(gold="A", gold_explanation=GOLD_EXPLANATION, open_slots=0)
    gold.refresh_from_db()
    now = timezone.now()
    guidelines = GuidelineVersion.objects.filter(project=project).first()
    lease = {"served_at": now, "expires_at": now + timedelta(hours=1), "guideline_version": guidelines}
    assignment = Assignment.objects.create(project=project, pair=gold, annotator=users[ANNOTATOR],
                                           kind=Assignment.Kind.GOLD, left_is_a=True, **lease)  # fmt: skip
    done = Assignment.objects.create(project=project, pair=gold, annotator=second, kind=Assignment.Kind.GOLD,
                                     state=Assignment.State.DONE, left_is_a=False, finished_at=now,
                                     **lease)  # fmt: skip
    Label.objects.create(project=project, pair=gold, assignment=done, annotator=second, choice="B", left_is_a=False,
                         rationale=SECOND_RATIONALE, guideline_version=guidelines)  # fmt: skip
    Label.objects.create(project=project, pair=gold, source="external", external_annotator=EXTERNAL_RATER, choice="B")
    batch = ImportBatch.objects.create(project=project, created_by=users[LEAD], filename="pairs.jsonl",
                                       state=ImportBatch.State.SUCCEEDED, rows_read=4, pairs_created=4)  # fmt: skip

    judge = judge_create(project=project, user=users[LEAD], name=JUDGE_NAME, base_url=JUDGE_URL, model=JUDGE_MODEL,
                         api_key_env="ARBITER_TEST_JUDGE_KEY")  # fmt: skip
    prompt = judge.prompt_versions.get()
    # Created directly: run_start would send a task to the broker.
    run = JudgeRun.objects.create(project=project, judge=judge, prompt_version=prompt, state=JudgeRun.State.SUCCEEDED,
                                  pair_ids=[gold.pk], requests_planned=2, verdicts_done=1, created_by=users[LEAD],
                                  started_at=now, finished_at=now)  # fmt: skip
    Verdict.objects.create(pair=gold, judge=judge, prompt_version=prompt, run=run, order=Verdict.Order.AB,
                           status=Verdict.Status.OK, winner="A", winner_slot="first", rationale=VERDICT_RATIONALE,
                           raw=json.dumps({"winner": "A", "rationale": VERDICT_RATIONALE}))  # fmt: skip

    # A real export (12 labelled pairs, written under EXPORT_ROOT) and a queued training job on it whose README
    # artifact exists, so the download routes have a file to serve.
    export = labelled_export(project, users[LEAD], "dpo")
    assert export.state == DatasetExport.State.SUCCEEDED and "train.jsonl" in export.files
    export.hub_pushes.create(repo_id="acme/matrix", token_env="HF_TOKEN", state="succeeded", created_by=users[LEAD])
    model_dir = root / "model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text("{}")
    job = job_create(export=export, user=users[ADMIN], settings_={"base_model": str(model_dir)})
    readme = root / "training" / str(job.public_id) / "README.md"
    readme.parent.mkdir(parents=True)
    readme.write_text("# adapter\n")
    TrainingJob.objects.filter(pk=job.pk).update(
        artifacts={"README.md": {"path": f"{job.public_id}/README.md", "bytes": readme.stat().st_size}}
    )
    # A sweep with that job as its run (created directly: sweeps have their own tests).
    sweep = Sweep.objects.create(project=project, export=export, preset="dpo-lora", axes={"beta": [0.1]},
                                 created_by=users[ADMIN])  # fmt: skip
    TrainingJob.objects.filter(pk=job.pk).update(sweep=sweep, sweep_point={"beta": 0.1})

    # Generation: a prompt set, an endpoint generator, a finished run (created directly) and one candidate.
    prompts_file = root / "prompts.jsonl"
    prompts_file.write_text(json.dumps({"prompt": "Say hi."}) + "\n")
    prompt_set = prompts_import(project=project, path=prompts_file, name="matrix-prompts", user=users[LEAD])
    generator = generator_create(project=project, user=users[LEAD], name=GENERATOR_NAME, base_url=JUDGE_URL,
                                 model=GENERATOR_MODEL)  # fmt: skip
    generation_run = GenerationRun.objects.create(
        project=project, prompt_set=prompt_set, generator=generator, plan=plan_clean({}), prompt_ids=[],
        state=GenerationRun.State.SUCCEEDED, created_by=users[LEAD],
    )  # fmt: skip
    candidate = Candidate.objects.create(prompt=prompt_set.prompts.get(), generator=generator, run=generation_run,
                                         slot_key="k", model=GENERATOR_MODEL, temperature=0.7, sample=0, max_tokens=16,
                                         text="Hi!")  # fmt: skip
    rating_open(prompt_set=prompt_set, k=2)  # members may rate it (blinded)

    # An evaluation of the job (created directly: its runs have their own tests), with a report.
    evaluation = Evaluation.objects.create(
        project=project, job=job, prompt_set=prompt_set, judge=judge, plan=plan_clean({}), limit=1,
        state=Evaluation.State.SUCCEEDED, created_by=users[ADMIN], report={},
    )  # fmt: skip

    # A campaign with one failed round (created directly: campaigns have their own tests); resume and cancel find
    # nothing live to start or stop.
    campaign = Campaign.objects.create(
        project=project, name="matrix campaign", base_model=str(model_dir), prompt_set=prompt_set,
        eval_prompt_set=prompt_set, batches=[[]], plan=plan_clean({}), judge=judge, pairing={"strategy": "all"},
        recipe=export.recipe, preset="dpo-lora", rounds=1, state=Campaign.State.FAILED, created_by=users[ADMIN],
    )  # fmt: skip
    CampaignRound.objects.create(campaign=campaign, number=1, state=CampaignRound.State.FAILED, error="matrix")

    # A composite of the judge, computed over the judged gold pair.
    PairJudgement.objects.create(pair=gold, judge=judge, prompt_version=prompt, winner="A", consistent=True, margin=3.0,
                                 orders=1)  # fmt: skip
    axes = [{"name": "helpful", "weight": 1, "scorers": [{"judge": judge.pk, "weight": 1}]}]
    composite = composite_create(project=project, user=users[LEAD], name=COMPOSITE_NAME, axes=axes)
    composite_compute(composite=composite)

    # Objects of the other project, for ids sent in request bodies.
    other_judge = judge_create(project=other, user=users[OTHER_LEAD], name="rival-judge", base_url=JUDGE_URL,
                               model="rival-model", api_key_env="ARBITER_TEST_JUDGE_KEY")  # fmt: skip
    make_pairs(other, 2)
    other_recipe = recipe_save(project=other, name="rival", config={"source": "human"}, user=users[OTHER_LEAD])
    shared = judge_create(project=None, user=users[ADMIN], name=SHARED_JUDGE, base_url=JUDGE_URL, model="shared-model",
                          api_key_env="ARBITER_TEST_JUDGE_KEY")  # fmt: skip

    url_kwargs = {
        "slug": project.slug,
        "batch_id": batch.public_id,
        "pair_id": gold.pk,
        "assignment_id": assignment.public_id,
        "user_id": second.pk,
        "judge_id": judge.public_id,
        "run_id": run.public_id,
        "recipe_id": export.recipe_id,
        "export_id": export.public_id,
        "job_id": job.public_id,
        "prompt_set_id": prompt_set.public_id,
        "generator_id": generator.public_id,
        "generation_run_id": generation_run.public_id,
        "candidate_id": candidate.pk,
        "evaluation_id": evaluation.public_id,
        "sweep_id": sweep.public_id,
        "campaign_id": campaign.public_id,
        "composite_id": composite.public_id,
    }
    secrets = ["model-alpha", "model-beta", GOLD_EXPLANATION, SECOND_ANNOTATOR, SECOND_RATIONALE, EXTERNAL_RATER,
               JUDGE_NAME, JUDGE_MODEL, JUDGE_URL, SHARED_JUDGE, VERDICT_RATIONALE, export.recipe.name,
               GENERATOR_NAME, GENERATOR_MODEL, COMPOSITE_NAME,
               *FORBIDDEN_PATHS,
               *(str(url_kwargs[k]) for k in ("batch_id", "judge_id", "run_id", "export_id", "job_id",
                                              "prompt_set_id", "generator_id", "generation_run_id",
                                              "evaluation_id", "sweep_id", "campaign_id",
                                              "composite_id"))]  # fmt: skip
    return World(users=users, project=project, other_project=other, url_kwargs=url_kwargs, gold_pair=gold,
                 other_judge=other_judge, other_recipe=other_recipe, shared_judge=shared, secrets=secrets)  # fmt: skip


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, tmp_path_factory):
    root = tmp_path_factory.mktemp("permission-matrix")
    with (
        django_db_blocker.unblock(),
        override_settings(EXPORT_ROOT=root / "exports", TRAINING_ROOT=root / "training"),
    ):
        outer = transaction.atomic()
        outer.__enter__()
        try:
            yield _build_world(root)
        finally:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)


def client_for(world: World, role: str) -> tuple[Client, str]:
    """A CSRF-enforcing client logged in as the role, and the CSRF token a page handed it."""
    client = Client(enforce_csrf_checks=True)
    if role != ANONYMOUS:
        client.force_login(world.users[role])  # no password hashing: hundreds of cases
    return client, csrf(client, reverse("login"))


def url_of(route: Route, kwargs: dict) -> str:
    return reverse(route.name, kwargs={**{k: kwargs[k] for k in route.kwargs}, **route.fixed})


def send(client: Client, route: Route, method: str, url: str, token: str):
    if method == "GET":
        response = client.get(url)
    elif method in ("PATCH", "PUT", "DELETE"):  # API only: a JSON body (DELETE's is empty or ignored)
        send_json = getattr(client, method.lower())
        response = send_json(url, route.body, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    elif route.sends_json:
        response = client.post(url, route.body, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    else:
        response = client.post(url, route.body, HTTP_X_CSRFTOKEN=token)
    if response.streaming:  # a download: reading it to the end closes the file (the client's wrapper does)
        b"".join(response.streaming_content)
    return response


def _case_id(route: Route, method: str, role: str) -> str:
    return f"{route.name}-{method}-{role}"


CASES = [(route, method, role) for route in ROUTES for method in route.methods for role in ROLES]


@pytest.mark.parametrize(("route", "method", "role"), CASES, ids=[_case_id(*c) for c in CASES])
def test_route_answers_each_role_as_the_matrix_says(world, route, method, role):
    client, token = client_for(world, role)
    url = url_of(route, world.url_kwargs)
    response = send(client, route, method, url, token)
    status = response.status_code
    if role == ANONYMOUS:
        if route.api:
            assert status == 401, f"{method} {url}: anonymous got {status}"
        else:
            assert status == 302 and response["Location"].startswith(reverse("login") + "?next="), (
                f"{method} {url}: anonymous got {status} {response.get('Location')}"
            )
    elif role in route.allowed:
        expected = GET_OK if method == "GET" else POST_OK
        assert status in expected, f"{method} {url}: {role} is allowed but got {status}"
        if status == 302:
            assert not response["Location"].startswith(reverse("login")), f"{method} {url}: {role} sent to login"
    else:
        assert status == route.denied_status, f"{method} {url}: {role} must get {route.denied_status}, got {status}"


# Routes that name an object besides the project: with another project's slug they must not find it.
CROSS_CASES = [
    (route, method, role)
    for route in ROUTES
    if "slug" in route.kwargs and len(route.kwargs) > 1
    for method in route.methods
    for role in (OTHER_LEAD, ADMIN)
]


@pytest.mark.parametrize(("route", "method", "role"), CROSS_CASES, ids=[_case_id(*c) for c in CROSS_CASES])
def test_another_projects_slug_does_not_reach_this_projects_objects(world, route, method, role):
    """The lead of project B (or an admin) asking for /p/B/<an object of project A>/ gets 404: objects are looked up
    within the project in the URL, not by id alone."""
    client, token = client_for(world, role)
    url = url_of(route, {**world.url_kwargs, "slug": world.other_project.slug})
    status = send(client, route, method, url, token).status_code
    assert status == 404, f"{method} {url}: {role} got {status}"


def test_ids_in_request_bodies_are_scoped_to_the_project(world):
    """A lead naming another project's judge or recipe in a request body gets 404 (API) or a form error (page)."""
    client, token = client_for(world, LEAD)
    slug = world.project.slug
    runs = JudgeRun.objects.count()
    response = client.post(reverse("api-judge-runs", args=[slug]), {"judge": str(world.other_judge.public_id)},
                           content_type="application/json", HTTP_X_CSRFTOKEN=token)  # fmt: skip
    assert response.status_code == 404
    page = client.post(reverse("judging:judges", args=[slug]), {"run-judge": str(world.other_judge.public_id)},
                       HTTP_X_CSRFTOKEN=token)  # fmt: skip
    assert page.status_code == 200 and b"Select a valid choice" in page.content
    assert JudgeRun.objects.count() == runs

    exports = DatasetExport.objects.count()
    response = client.post(reverse("api-exports", args=[slug]), {"recipe": world.other_recipe.pk, "format": "dpo"},
                           content_type="application/json", HTTP_X_CSRFTOKEN=token)  # fmt: skip
    assert response.status_code == 404
    form = {"format": "dpo", "test_fraction": 0.1, "seed": 0}
    page = client.post(reverse("training:export_new", args=[slug, world.other_recipe.pk]), form, HTTP_X_CSRFTOKEN=token)
    assert page.status_code == 404
    assert DatasetExport.objects.count() == exports


@pytest.mark.parametrize("role", ROLES)
def test_api_token_clients_get_the_same_answers(world, role):
    """The same matrix through TokenAuthentication (no session, no CSRF): every API row, each request undone."""
    from rest_framework.authtoken.models import Token

    client = Client(enforce_csrf_checks=True)
    if role != ANONYMOUS:
        client.defaults["HTTP_AUTHORIZATION"] = f"Token {Token.objects.create(user=world.users[role]).key}"
    for route in (r for r in ROUTES if r.api):
        for method in route.methods:
            url = url_of(route, world.url_kwargs)
            with transaction.atomic():
                status = send(client, route, method, url, "").status_code
                transaction.set_rollback(True)
            if role == ANONYMOUS:
                expected = {401}
            elif role in route.allowed:
                expected = GET_OK if method == "GET" else POST_OK
            else:
                expected = {route.denied_status}
            assert status in expected, f"{method} {url}: {role} with a token got {status}"


def test_shared_judges_are_read_only_for_leads(world):
    """A judge an admin shares with every project: any project's lead may look at it (and use it), only admins may
    change it, and a lead cannot share a judge by posting the admins' checkbox."""
    shared = world.shared_judge
    body = {"name": "renamed", "base_url": JUDGE_URL, "model": "changed-model", "api_key_env": "", "temperature": 0,
            "max_tokens": 256, "price_input_per_m": 0, "price_output_per_m": 0, "max_concurrency": 2,
            "requests_per_minute": 60, "system": "s", "template": "{prompt}{response_a}{response_b}"}  # fmt: skip
    for role, project in ((LEAD, world.project), (OTHER_LEAD, world.other_project)):
        client, token = client_for(world, role)
        url = reverse("judging:judge_edit", args=[project.slug, shared.public_id])
        page = client.get(url)
        assert page.status_code == 200 and b"only admins can change it" in page.content
        assert client.post(url, body, HTTP_X_CSRFTOKEN=token).status_code == 200
        shared.refresh_from_db()
        assert shared.model == "shared-model" and shared.name == SHARED_JUDGE
        new = client.post(reverse("judging:judge_new", args=[project.slug]), {**body, "name": f"new-{role}",
                          "shared": "on"}, HTTP_X_CSRFTOKEN=token)  # fmt: skip
        assert new.status_code == 302
        assert JudgeConfig.objects.get(name=f"new-{role}").project == project  # not shared
    for role in (ANNOTATOR, OTHER_ANNOTATOR, OUTSIDER):
        client, _ = client_for(world, role)
        project = world.other_project if role == OTHER_ANNOTATOR else world.project
        assert client.get(reverse("judging:judge_edit", args=[project.slug, shared.public_id])).status_code == 404
    # The admin may change it (so the refusals above are not a form error).
    client, token = client_for(world, ADMIN)
    url = reverse("judging:judge_edit", args=[world.project.slug, shared.public_id])
    assert client.post(url, {**body, "name": SHARED_JUDGE}, HTTP_X_CSRFTOKEN=token).status_code == 302
    shared.refresh_from_db()
    assert shared.model == "changed-model" and shared.project is None


@pytest.mark.parametrize("role", [OUTSIDER, OTHER_ANNOTATOR, OTHER_LEAD])
def test_project_lists_show_only_the_users_projects(world, role):
    client, _ = client_for(world, role)
    page = client.get(reverse("annotation:project_list")).content.decode()
    api = client.get(reverse("api-projects")).json()
    for text in (world.project.slug, world.project.name):
        assert text not in page
    assert world.project.slug not in [p["slug"] for p in api]
    if role != OUTSIDER:
        assert world.other_project.slug in [p["slug"] for p in api]


def _json_keys(value) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _json_keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _json_keys(v)}
    return set()


def test_annotator_sees_nothing_it_should_not(world):
    """Blinding: model names, gold answers and explanations, other annotators' labels and names, judges and their
    verdicts, export and training links never reach the annotator, on the pages or through the API."""
    client, token = client_for(world, ANNOTATOR)
    slug, held = world.project.slug, str(world.url_kwargs["assignment_id"])
    seen: list[tuple[str, object]] = []  # (what, response)

    def get(name, *args):
        response = client.get(reverse(name, args=args))
        assert response.status_code == 200, name
        seen.append((name, response))
        return response

    def post(name, *args, query="", body=None, as_json=True):
        extra = {"content_type": "application/json"} if as_json else {}
        response = client.post(reverse(name, args=args) + query, body or {}, HTTP_X_CSRFTOKEN=token, **extra)
        assert response.status_code in (200, 201), (name, response.status_code, response.content[:300])
        seen.append((name, response))
        return response

    get("annotation:project_list")
    get("annotation:project_detail", slug)
    page = get("annotation:annotate", slug).content.decode()
    # The page really shows the held calibration pair (so the checks below look at something).
    assert held in page and world.gold_pair.response_a in page and world.gold_pair.response_b in page
    post("annotation:annotate_next", slug, body={"exclude": held}, as_json=False)
    get("api-projects")
    get("api-project", slug)
    get("api-progress", slug)
    assert post("api-next", slug).json()["id"] == held
    second = post("api-next", slug, query=f"?exclude={held}").json()["id"]
    answered = post("api-label", slug, held, body={"choice": "left"}).json()
    assert answered["created"] is True and answered["feedback"] is None  # a calibration item never tells the answer
    post("annotation:annotate_submit", slug, second, body={"choice": "right"})
    third = post("api-next", slug).json()["id"]
    post("api-skip", slug, third)
    post("annotation:annotate_skip", slug, post("api-next", slug).json()["id"])

    for name, response in seen:
        body = response.content.decode()
        leaked = [s for s in world.secrets if s in body]
        assert not leaked, f"{name} sent the annotator {leaked}"
        if response["Content-Type"].startswith("application/json"):
            keys = _json_keys(response.json()) & FORBIDDEN_KEYS
            assert not keys, f"{name} sent the annotator the fields {keys}"


def _patterns(patterns, namespace="", prefix=""):
    """(name or None, route) for every URL pattern, through includes; names carry their namespaces."""
    for p in patterns:
        if isinstance(p, URLResolver):
            ns = ":".join(filter(None, [namespace, p.namespace]))
            yield from _patterns(p.url_patterns, ns, prefix + str(p.pattern))
        elif isinstance(p, URLPattern):
            name = ":".join(filter(None, [namespace, p.name])) if p.name else None
            yield name, prefix + str(p.pattern), p


def _app_patterns():
    """Every pattern outside the exempt namespaces (named or not: admin/ has unnamed ones) and prefixes."""
    prefixes = (*EXEMPT_PREFIXES, *(f"{namespace}/" for namespace in EXEMPT_NAMESPACES))
    for name, route, pattern in _patterns(get_resolver().url_patterns):
        if (name or "").partition(":")[0] in EXEMPT_NAMESPACES or route.startswith(prefixes):
            continue
        yield name, route, pattern


def test_every_route_is_in_the_matrix_or_exempt():
    """A new view fails here until it has a row in tests/security/permission_matrix.py (or a reason in EXEMPT)."""
    patterns = list(_app_patterns())
    unnamed = [route for name, route, _ in patterns if name is None]
    missing = sorted({name for name, _, _ in patterns if name} - {r.name for r in ROUTES} - set(EXEMPT))
    assert not unnamed and not missing, (
        f"add these routes to tests/security/permission_matrix.py: {missing}; "
        f"name these routes so they can be added: {unnamed}"
    )
    assert len(patterns) > 40  # the walk really found the app's routes


def test_matrix_rows_name_real_routes_once_and_every_api_method():
    patterns = {name: pattern for name, _, pattern in _app_patterns() if name}
    stale = sorted({r.name for r in ROUTES} - set(patterns))
    assert not stale, f"matrix rows for routes that do not exist: {stale}"
    assert not set(EXEMPT) - set(patterns), "EXEMPT names a route that does not exist"
    assert not set(EXEMPT) & {r.name for r in ROUTES}, "a route is both exempt and in the matrix"
    keys = [(r.name, m) for r in ROUTES for m in r.methods]
    assert len(keys) == len(set(keys)), "a (route, method) appears twice"
    for r in ROUTES:
        assert r.allowed <= set(LOGGED_IN) and set(r.methods) <= {"GET", "POST", "PATCH", "PUT", "DELETE"}, r.name
    # Every method an API view handles has a row (pages declare theirs; an unlisted one is answered the same way).
    for name, pattern in patterns.items():
        view = getattr(pattern.callback, "cls", None)
        if view is None or name in EXEMPT:
            continue
        handled = {m.upper() for m in view.http_method_names if m not in ("options", "head") and hasattr(view, m)}
        declared = {m for r in ROUTES if r.name == name for m in r.methods}
        assert handled == declared, f"{name}: the view handles {sorted(handled)}, the matrix has {sorted(declared)}"
