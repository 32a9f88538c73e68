"""Generation runs in-process against the fault-injecting server: one candidate per sampling slot with its
provenance, flags, the request cache, ratings, budget, and server faults (500s, 429 with Retry-After, a body that is
not UTF-8, a 1 MB reply). The Celery path, with real workers and a real model server, is in test_worker_runs.py."""

from decimal import Decimal

import pytest

from generation.engine import rate_chunk, run_chunk, sample_chunk
from generation.lifecycle import run_finish_if_done
from generation.models import Candidate, GenerationRun, Rating
from generation.plan import slots
from judging.services import judge_create
from tests.generation.helpers import endpoint_generator, new_run, prompt_set
from tests.judging.fake_openai import Action, FakeOpenAI, ok, status

pytestmark = pytest.mark.django_db


@pytest.fixture
def server():
    with FakeOpenAI(reject_json_schema=True) as fake:
        yield fake


def numbered(body):
    """A distinct answer per request: the temperature and seed it was asked with."""
    return ok(f"Answer at T={body['temperature']} seed={body.get('seed')} for {body['messages'][-1]['content']}")


def test_one_candidate_per_slot_with_provenance(project, lead, server, tmp_path):
    server.default = numbered
    prompts = prompt_set(project, lead, tmp_path, n=3)
    generator = endpoint_generator(project, lead, server.base_url)
    run = new_run(project, prompts, generator, lead, {"temperatures": [0.5, 1.0], "samples": 2, "max_tokens": 32,
                                                      "top_p": 0.9, "seed": 7, "system": "Be brief."})  # fmt: skip
    outcome = sample_chunk(run, run.prompt_ids)
    assert outcome.written == 12 and outcome.retry_in is None and len(server.requests) == 12
    candidates = Candidate.objects.filter(run=run)
    assert candidates.count() == 12 and candidates.values("prompt", "slot_key").distinct().count() == 12
    c = candidates.filter(temperature=1.0, sample=1).first()
    assert (c.model, c.top_p, c.max_tokens, c.finish_reason, c.tokens_in, c.tokens_out) == (
        "m",
        0.9,
        32,
        "stop",
        100,
        20,
    )
    assert c.cost_usd == Decimal("0.000140") and c.seed is not None and not c.from_cache
    sent = next(r for r in server.requests if r["seed"] == c.seed and r["temperature"] == 1.0)
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."} and sent["top_p"] == 0.9
    assert len({r["seed"] for r in server.requests}) == 4  # each slot its own seed, the same for every prompt
    run.refresh_from_db()
    assert (run.candidates_done, run.api_calls, run.tokens_in, run.cost_usd) == (12, 12, 1200, Decimal("0.00168"))
    assert run_finish_if_done(run) and GenerationRun.objects.get(pk=run.pk).state == "succeeded"


def test_a_chunk_run_twice_writes_nothing_twice_and_cached_replies_cost_nothing(project, lead, server, tmp_path):
    server.default = numbered
    prompts = prompt_set(project, lead, tmp_path, n=2)
    generator = endpoint_generator(project, lead, server.base_url)
    run = new_run(project, prompts, generator, lead)
    sample_chunk(run, run.prompt_ids)
    assert sample_chunk(run, run.prompt_ids).written == 0 and len(server.requests) == 8  # every slot filled
    # the candidates gone (another project's cleanup, say), the same plan is answered from the cache, each slot
    # with its own reply (the seed is part of the key: two samples at one temperature are two replies)
    by_slot = {(c.prompt_id, c.slot_key): c.text for c in Candidate.objects.all()}
    assert len(set(by_slot.values())) == 8
    Candidate.objects.all().delete()
    again = new_run(project, prompts, generator, lead)
    assert sample_chunk(again, again.prompt_ids).written == 8 and len(server.requests) == 8
    again.refresh_from_db()
    assert (again.api_calls, again.cache_hits, again.cost_usd) == (0, 8, 0)
    assert Candidate.objects.filter(from_cache=True).count() == 8
    assert {(c.prompt_id, c.slot_key): c.text for c in Candidate.objects.all()} == by_slot


def test_flags_empty_truncated_duplicates_and_identity_leaks(project, lead, server, tmp_path):
    prompts = prompt_set(project, lead, tmp_path, n=1)
    generator = endpoint_generator(project, lead, server.base_url, max_concurrency=1)
    server.script = [ok("Four."), ok("  four. "), ok("", finish_reason="stop"),
                     ok("As ChatGPT, I think it is four", finish_reason="length")]  # fmt: skip
    run = new_run(project, prompts, generator, lead)
    sample_chunk(run, run.prompt_ids)
    by_text = {c.text: c for c in Candidate.objects.order_by("pk")}
    assert by_text["  four. "].duplicate_of == by_text["Four."] and by_text["Four."].duplicate_of is None
    assert by_text[""].empty and by_text[""].duplicate_of is None
    leak = by_text["As ChatGPT, I think it is four"]
    assert leak.truncated and leak.finish_reason == "length" and leak.identity_leak == "ChatGPT"
    assert Candidate.objects.filter(empty=False, truncated=False, identity_leak="").count() == 2


def test_ratings_are_written_once_and_unparseable_ones_kept(project, lead, server, tmp_path):
    server.default = numbered
    prompts = prompt_set(project, lead, tmp_path, n=1)
    generator = endpoint_generator(project, lead, server.base_url)
    rater = judge_create(project=project, user=lead, name="rater", base_url=server.base_url, model="judge",
                         max_tokens=64, requests_per_minute=60_000, max_concurrency=1)  # fmt: skip
    run = new_run(project, prompts, generator, lead, {"temperatures": [0.7], "samples": 3}, rater=rater)
    sample_chunk(run, run.prompt_ids)
    rating = '{"score": 8, "rationale": "Right."}'
    # mode detection (two probes), then three ratings: one needs a repair, whose second reply is still bad
    server.script = [ok(rating), ok(rating), ok(rating), ok("nonsense"), ok('{"score": 11, "rationale": "x"}'),
                     ok('{"score": 3, "rationale": "Wrong."}')]  # fmt: skip
    outcome = rate_chunk(run, run.prompt_ids)
    assert outcome.written == 3 and outcome.retry_in is None
    ratings = Rating.objects.filter(run=run)
    assert sorted((r.status, r.score) for r in ratings) == [("ok", 3), ("ok", 8), ("unparseable", None)]
    assert "score" in ratings.get(status="unparseable").rationale  # why it could not be used
    assert rate_chunk(run, run.prompt_ids).written == 0  # nothing rated twice
    run.refresh_from_db()
    assert (run.ratings_done, run.unparseable) == (3, 1) and run_finish_if_done(run)


def test_budget_stops_the_run(project, lead, server, tmp_path):
    server.default = numbered
    prompts = prompt_set(project, lead, tmp_path, n=4)
    generator = endpoint_generator(project, lead, server.base_url, max_concurrency=1, budget_usd=Decimal("0.0003"))
    run = new_run(project, prompts, generator, lead)
    run_chunk(run, run.prompt_ids)
    run.refresh_from_db()
    # $0.00014 a request: the third reaches the budget; the one already in flight (max_concurrency) is still kept
    assert run.state == "budget" and "budget" in run.error and run.candidates_done in (3, 4)
    assert len(server.requests) == run.candidates_done


@pytest.mark.parametrize("fault, retry_in", [
    (status(500, message="overloaded"), 0.0),
    (status(429, retry_after=300, message="slow down"), 300.0),  # longer than the client waits itself
])  # fmt: skip
def test_transient_faults_end_the_chunk_for_a_retry(project, lead, server, tmp_path, fault, retry_in):
    prompts = prompt_set(project, lead, tmp_path, n=1)
    generator = endpoint_generator(project, lead, server.base_url, max_concurrency=1)
    server.default = lambda body: fault
    run = new_run(project, prompts, generator, lead)
    outcome = sample_chunk(run, run.prompt_ids)
    assert outcome.retry_in == retry_in and outcome.written == 0 and not Candidate.objects.exists()
    assert GenerationRun.objects.get(pk=run.pk).state == "running"
    server.default = numbered  # the server recovers: the retried chunk fills every slot
    assert sample_chunk(run, run.prompt_ids).written == 4


def test_a_body_that_is_not_utf8_and_a_1mb_reply(project, lead, server, tmp_path):
    prompts = prompt_set(project, lead, tmp_path, n=1)
    generator = endpoint_generator(project, lead, server.base_url, max_concurrency=1)
    bad = Action(raw_body=b'{"choices": [{"message": {"content": "\xff\xfe caf\xe9"}}]}')
    server.default = lambda body: bad
    run = new_run(project, prompts, generator, lead, {"temperatures": [0.5], "samples": 1})
    outcome = sample_chunk(run, run.prompt_ids)
    assert outcome.retry_in is not None and not Candidate.objects.exists()  # not stored as garbage; retried
    big = "word " * 210_000
    server.default = lambda body: ok(big, finish_reason="length")
    assert sample_chunk(run, run.prompt_ids).written == 1
    candidate = Candidate.objects.get()
    assert candidate.truncated and len(candidate.text) == len(big)
    assert len(slots(run.plan)) == 1
