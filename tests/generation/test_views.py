"""Generation pages and API for leads, and rating single candidates for members: the same services, bad input
named by line and field, hostile candidate text rendered inert, nothing built or rated twice, annotators blinded."""

import io
import json
from unittest import mock

import pytest
from django.urls import reverse

from annotation.models import Membership, Pair
from generation.models import Candidate, GenerationRun, Generator, HumanRating, PromptSet
from generation.selectors import human_rating_report
from generation.services import rating_open
from tests.conftest import csrf, login
from tests.factories import UserFactory, member
from tests.generation.helpers import endpoint_generator, prompt_set, rated_candidates

pytestmark = pytest.mark.django_db

HOSTILE = 'Four. <script>alert("x")</script><img src=x onerror="alert(1)"> [link](javascript:alert(2))'


def test_upload_prompts_on_the_page_and_a_bad_file_changes_nothing(project, as_lead):
    url = reverse("generation:home", args=[project.slug])
    token = csrf(as_lead, url)
    bad = io.BytesIO(b'{"prompt": "ok"}\n{"prompt": 5}\n')
    bad.name = "bad.jsonl"
    page = as_lead.post(url, {"prompts-name": "p", "prompts-file": bad}, HTTP_X_CSRFTOKEN=token)
    assert page.status_code == 200 and b"bad.jsonl, line 2, field &#x27;prompt&#x27;: must be a non-empty string" in (
        page.content
    )  # fmt: skip
    assert not PromptSet.objects.exists()
    good = io.BytesIO(b'{"prompt": "Say hi."}\n{"prompt": "Say hi."}\n{"prompt": "Count."}\n')
    good.name = "good.jsonl"
    response = as_lead.post(url, {"prompts-name": "p", "prompts-file": good}, HTTP_X_CSRFTOKEN=token, follow=True)
    assert b"2 prompts imported into p (1 repeated ones skipped)" in response.content


def test_start_a_run_on_the_page_queues_it(project, lead, as_lead, tmp_path):
    prompts = prompt_set(project, lead, tmp_path, n=2)
    generator = endpoint_generator(project, lead, "http://127.0.0.1:9/v1")
    url = reverse("generation:home", args=[project.slug])
    form = {"run-prompt_set": prompts.public_id, "run-generator": generator.public_id, "run-temperatures": "0.2, 0.9",
            "run-samples": 2, "run-top_p": 1, "run-max_tokens": 16, "run-seed": 3}  # fmt: skip
    with mock.patch("generation.services.generation_run_dispatch_task.delay") as delay:
        response = as_lead.post(url, form, HTTP_X_CSRFTOKEN=csrf(as_lead, url))
    run = GenerationRun.objects.get()
    assert response.status_code == 302 and delay.call_args.args == (run.pk,)
    assert run.plan["temperatures"] == [0.2, 0.9] and run.requests_planned == 8
    bad = {**form, "run-temperatures": "0.2, 3"}
    page = as_lead.post(url, bad, HTTP_X_CSRFTOKEN=csrf(as_lead, url))
    assert b"must be numbers from 0 to 2, not 3.0" in page.content and GenerationRun.objects.count() == 1
    detail = as_lead.get(reverse("generation:run_detail", args=[project.slug, run.public_id]))
    assert b"Temperatures 0.2, 0.9" in detail.content


def test_generators_are_checked(project, lead, as_lead, tmp_path):
    url = reverse("generation:generator_new", args=[project.slug])
    token = csrf(as_lead, url)
    base = {"name": "g", "model": "m", "price_input_per_m": 0, "price_output_per_m": 0, "max_concurrency": 2,
            "requests_per_minute": 60}  # fmt: skip
    page = as_lead.post(url, {**base, "kind": "endpoint"}, HTTP_X_CSRFTOKEN=token)
    assert b"An endpoint generator needs the server" in page.content
    page = as_lead.post(url, {**base, "kind": "local", "model": "/nowhere/model"}, HTTP_X_CSRFTOKEN=token)
    assert b"/nowhere/model: no such model folder" in page.content
    (tmp_path / "config.json").write_text("{}")
    page = as_lead.post(url, {**base, "kind": "local", "model": str(tmp_path), "adapter": str(tmp_path)},
                        HTTP_X_CSRFTOKEN=token)  # fmt: skip
    assert b"no LoRA adapter there" in page.content and not Generator.objects.exists()
    response = as_lead.post(url, {**base, "kind": "local", "model": str(tmp_path)}, HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 302 and Generator.objects.get().kind == "local"


def test_candidates_are_rendered_inert_and_pairs_are_previewed_then_built_once(project, lead, as_lead, tmp_path):
    prompts, _ = rated_candidates(project, lead, tmp_path, [[(HOSTILE, 9), ("Five.", 2), ("As ChatGPT, four.", 1)],
                                                      [("Two.", 7), ("Three.", 7)]])  # fmt: skip
    url = reverse("generation:prompt_set", args=[project.slug, prompts.public_id])
    page = as_lead.get(url).content.decode()
    assert "<script>alert" not in page and "<img" not in page and 'href="javascript:' not in page
    assert "&lt;img src=x onerror" in page  # raw HTML is shown as text, never as a tag
    assert "Four." in page and "names “ChatGPT”" in page
    preview = as_lead.get(url, {"strategy": "best_worst", "per_prompt": 1, "min_margin": 1}).content.decode()
    assert "<b>1</b><span>pairs would be built</span>" in preview  # the tie gives none; the leak is left out
    assert "<b>1</b><span>flagged candidates left out</span>" in preview
    form = {"strategy": "best_worst", "per_prompt": 1, "min_margin": 1}
    token = csrf(as_lead, url)
    as_lead.post(url, form, HTTP_X_CSRFTOKEN=token)
    as_lead.post(url, form, HTTP_X_CSRFTOKEN=token)  # a double click
    pair = Pair.objects.get(project=project)
    assert pair.response_a == HOSTILE and pair.response_b == "Five." and pair.origin.margin == 7


def test_kto_download_and_api(project, lead, as_lead, tmp_path):
    prompts, made = rated_candidates(project, lead, tmp_path, [[("Good.", 9), ("Bad.", 2), ("Worse.", 1), ("Meh.", 5)]])
    response = as_lead.get(reverse("generation:kto_download", args=[project.slug, prompts.public_id]))
    rows = [json.loads(line) for line in response.content.splitlines()]
    assert [r["label"] for r in rows] == [True, False, False]  # 5 is between the thresholds: left out
    assert response["X-KTO-Desirable-Weight"] == "2.0" and response["X-KTO-Undesirable-Weight"] == "1.0"
    api = as_lead.get(reverse("api-prompt-set-kto", args=[project.slug, prompts.public_id]), {"good_at": 5})
    assert api.json()["desirable"] == 2 and api.json()["undesirable"] == 2


def test_api_prompt_sets_candidates_and_pairs(project, lead, tmp_path):
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(lead)
    url = reverse("api-prompt-sets", args=[project.slug])
    bad = io.BytesIO(b'{"prompt": "ok"}\n{"messages": "hi"}\n')
    bad.name = "p.jsonl"
    response = api.post(url, {"name": "x", "file": bad}, format="multipart")
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "messages"
    assert "p.jsonl, line 2, field 'messages'" in response.json()["detail"]
    prompts, made = rated_candidates(project, lead, tmp_path, [[("A.", 8), ("B.", 3)], [("C.", 6), ("D.", 2)]])
    listed = api.get(reverse("api-prompt-set-candidates", args=[project.slug, prompts.public_id])).json()
    assert [c["text"] for c in listed] == ["A.", "B.", "C.", "D."]
    assert listed[0]["model"] == "secret-model-x" and listed[0]["ratings"][0]["score"] == 8
    pairs_url = reverse("api-prompt-set-pairs", args=[project.slug, prompts.public_id])
    preview = api.post(pairs_url, {"strategy": "best_worst", "min_margin": 4}, format="json").json()
    assert preview["pairs"] == 2 and Pair.objects.count() == 0
    built = api.post(pairs_url, {"strategy": "best_worst", "min_margin": 4, "dry_run": False}, format="json")
    assert built.status_code == 201 and built.json()["created"] == 2 == Pair.objects.count()
    generators = api.get(reverse("api-generators", args=[project.slug])).json()
    assert generators[0]["model"] == "secret-model-x" and set(generators[0]) >= {"api_key_env", "kind", "adapter"}


def test_members_rate_blinded_once_each_with_calibration_first(project, lead, annotator, tmp_path):
    prompts, made = rated_candidates(project, lead, tmp_path, [[("Plain answer.", None), ("I am Llama 3, an AI.", None),
                                                          ("Gold answer.", None), ("", None)]])  # fmt: skip
    plain, leak, gold, empty = made
    Candidate.objects.filter(pk=gold.pk).update(gold="up")
    client = login(annotator)
    url = reverse("generation:rate", args=[project.slug])
    assert b"Nothing to rate right now" in client.get(url).content  # not open yet
    rating_open(prompt_set=prompts, k=2)
    page = client.get(url).content.decode()
    assert "Gold answer." in page  # calibration first
    assert "secret-model-x" not in page and "secret-generator-x" not in page  # blinded: no model, no generator
    token = csrf(client, url)
    submit = reverse("generation:rate_submit", args=[project.slug, gold.pk])
    client.post(submit, {"choice": "up", "stars": 4, "time_ms": 1200}, HTTP_X_CSRFTOKEN=token)
    client.post(submit, {"choice": "down"}, HTTP_X_CSRFTOKEN=token)  # a double click, another tab: the first stays
    rating = HumanRating.objects.get(candidate=gold)
    assert (rating.up, rating.stars, rating.time_ms) == (True, 4, 1200)
    page = client.get(url).content.decode()
    assert "Plain answer." in page and "Llama" not in page  # the identity leak is kept from people
    for bad_id in (leak.pk, empty.pk):
        response = client.post(reverse("generation:rate_submit", args=[project.slug, bad_id]), {"choice": "up"},
                               HTTP_X_CSRFTOKEN=token)  # fmt: skip
        assert response.status_code == 404
    client.post(reverse("generation:rate_submit", args=[project.slug, plain.pk]), {"choice": "down"},
                HTTP_X_CSRFTOKEN=token)  # fmt: skip
    assert b"Nothing to rate right now" in client.get(url).content
    second = UserFactory(username="second")
    member(project, second)
    other = login(second)
    other.post(reverse("generation:rate_submit", args=[project.slug, plain.pk]), {"choice": "down", "stars": 1},
               HTTP_X_CSRFTOKEN=csrf(other, url))  # fmt: skip
    other.post(reverse("generation:rate_submit", args=[project.slug, gold.pk]), {"choice": "down"},
               HTTP_X_CSRFTOKEN=csrf(other, url))  # fmt: skip
    report = human_rating_report(prompts, n_boot=50)
    assert report["ratings"] == 4 and report["people"] == 2 and report["candidates_with_two_or_more"] == 2
    assert report["calibration_accuracy"] == {"annotator": {"correct": 1, "n": 1}, "second": {"correct": 0, "n": 1}}
    assert report["percent_agreement"]["value"] == 0.5
    Membership.objects.filter(project=project, user=second).update(paused_at="2026-01-01T00:00Z")
    assert b"paused" in other.get(url).content


def test_a_lead_opens_a_set_for_rating_and_marks_calibration_on_the_page(project, lead, as_lead, tmp_path):
    prompts, made = rated_candidates(project, lead, tmp_path, [[("One.", None), ("Two.", None)]])
    url = reverse("generation:prompt_set", args=[project.slug, prompts.public_id])
    token = csrf(as_lead, url)
    as_lead.post(reverse("generation:rating_open", args=[project.slug, prompts.public_id]), {"rating-k": 3},
                 HTTP_X_CSRFTOKEN=token)  # fmt: skip
    prompts.refresh_from_db()
    assert prompts.rating_k == 3 and not prompts.hide_identity_leaks  # the box was left unticked
    as_lead.post(reverse("generation:candidate_gold", args=[project.slug, made[1].pk]), {"gold": "down"},
                 HTTP_X_CSRFTOKEN=token)  # fmt: skip
    bad = as_lead.post(reverse("generation:candidate_gold", args=[project.slug, made[0].pk]), {"gold": "maybe"},
                       HTTP_X_CSRFTOKEN=token, follow=True)  # fmt: skip
    assert b"must be" in bad.content
    assert list(Candidate.objects.order_by("pk").values_list("gold", flat=True)) == ["", "down"]
    assert b"Open now: 3 people a candidate." in as_lead.get(url).content
