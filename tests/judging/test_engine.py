"""Judge runs in-process against the fault-injecting server: verdicts in both orders, pair-term mapping, the request
cache, the ledger and budget, pause/cancel, unparseable replies and fatal errors. (The Celery path, with a real
worker and a real model server, is in test_worker_runs.py.)"""

from decimal import Decimal

import pytest

from annotation.services.calibration import pair_gold_set
from judging.endpoint import STATE_CHECK_EVERY
from judging.engine import judge_chunk
from judging.lifecycle import run_finish_if_done
from judging.models import JudgeConfig, JudgeRun, PairJudgement, Verdict
from judging.services import judge_create, run_cancel
from tests.factories import make_pairs
from tests.judging.fake_openai import FakeOpenAI, ok, status, verdict

pytestmark = pytest.mark.django_db


@pytest.fixture
def server():
    with FakeOpenAI(reject_json_schema=True) as fake:
        yield fake


def new_run(project, judge, pairs, lead):
    """A run as run_start makes it, without queueing (the chunk is run in this process)."""
    version = judge.prompt_versions.first()
    return JudgeRun.objects.create(
        project=project, judge=judge, prompt_version=version, pair_ids=[p.pk for p in pairs], created_by=lead,
        requests_planned=len(pairs) * (2 if judge.both_orders else 1), state=JudgeRun.State.RUNNING,
    )  # fmt: skip


def make_judge(project, lead, server, **kw):
    values = {"name": "fake", "base_url": server.base_url, "model": "m", "max_tokens": 64,
              "requests_per_minute": 60_000, "price_input_per_m": Decimal("1.0"),
              "price_output_per_m": Decimal("2.0"), **kw}  # fmt: skip
    return judge_create(project=project, user=lead, **values)


def always(winner_slot):
    return lambda body: ok(verdict(winner_slot, 8 if winner_slot == "A" else 3, 3 if winner_slot == "A" else 8))


def test_both_orders_are_judged_and_mapped_to_pair_terms(project, lead, server):
    server.default = always("A")  # a judge that always prefers whatever it sees first
    judge = make_judge(project, lead, server)
    pairs = make_pairs(project, 3)
    run = new_run(project, judge, pairs, lead)
    outcome = judge_chunk(run, [p.pk for p in pairs])
    assert outcome.written == 6 and outcome.retry_in is None
    rows = Verdict.objects.filter(run=run)
    assert {(v.order, v.winner_slot, v.winner) for v in rows} == {("ab", "first", "A"), ("ba", "first", "B")}
    ab = rows.get(pair=pairs[0], order="ab")
    ba = rows.get(pair=pairs[0], order="ba")
    assert (ab.score_a, ab.score_b) == (8, 3) and (ba.score_a, ba.score_b) == (3, 8)  # scores in pair terms
    # the orders disagree: inconsistent, combined as a tie with margin 0
    judgement = PairJudgement.objects.get(pair=pairs[0])
    assert (judgement.consistent, judgement.winner, judgement.margin) == (False, "tie", 0.0)
    # the server really saw the pair both ways round: A before B in one request, B before A in another
    a, b = pairs[0].response_a, pairs[0].response_b
    texts = [r["messages"][1]["content"] for r in server.requests]
    a_first = {t.index(a) < t.index(b) for t in texts if a in t and b in t}
    assert a_first == {True, False}
    run.refresh_from_db()
    assert run.verdicts_done == 6 and run.api_calls == 6 and run.tokens_in == 600 and run.tokens_out == 120
    assert run.cost_usd == Decimal("0.000840")  # 600 in at $1/M + 120 out at $2/M
    assert run_finish_if_done(run)


def test_a_consistent_judge_gives_a_consistent_margin(project, lead, server):
    server.default = lambda body: ok(
        verdict("A", 9, 2) if "Answer A" in body["messages"][1]["content"].split("[Response B]")[0] else
        verdict("B", 2, 9)
    )  # fmt: skip
    judge = make_judge(project, lead, server)
    [pair] = make_pairs(project, 1)
    judge_chunk(new_run(project, judge, [pair], lead), [pair.pk])
    judgement = PairJudgement.objects.get(pair=pair)
    assert (judgement.consistent, judgement.winner, judgement.margin) == (True, "A", 7.0)


def test_a_rerun_makes_no_call_twice(project, lead, server):
    judge = make_judge(project, lead, server)
    pairs = make_pairs(project, 4)
    judge_chunk(new_run(project, judge, pairs, lead), [p.pk for p in pairs])
    calls = len(server.requests)
    # the same run's chunk delivered again: nothing to do
    run = JudgeRun.objects.get()
    assert judge_chunk(run, [p.pk for p in pairs]).written == 0
    # a new prompt version would be new verdicts, but identical messages come from the cache
    Verdict.objects.all().delete()
    second = new_run(project, judge, pairs, lead)
    assert judge_chunk(second, [p.pk for p in pairs]).written == 8
    assert len(server.requests) == calls
    second.refresh_from_db()
    assert second.cache_hits == 8 and second.api_calls == 0 and second.cost_usd == 0


def test_unparseable_replies_are_recorded_with_the_raw_text_and_the_run_goes_on(project, lead, server):
    judge = make_judge(project, lead, server, both_orders=False, max_concurrency=1)
    pairs = make_pairs(project, 2)
    run = new_run(project, judge, pairs, lead)
    # probes (detection) first, then: pair 1 garbage twice, pair 2 fine
    server.script = [status(500), ok(), ok(), ok("garbage"), ok("more garbage"), ok()]
    outcome = judge_chunk(run, [p.pk for p in pairs])
    assert outcome.written == 2
    bad = Verdict.objects.get(status="unparseable")
    assert "garbage" in bad.raw and "more garbage" in bad.raw
    assert Verdict.objects.filter(status="ok").count() == 1
    run.refresh_from_db()
    assert run.unparseable == 1


def test_budget_stops_the_run_and_keeps_what_was_judged(project, lead, server):
    judge = make_judge(project, lead, server, budget_usd=Decimal("0.0003"), max_concurrency=1)
    pairs = make_pairs(project, 10)
    run = new_run(project, judge, pairs, lead)
    judge_chunk(run, [p.pk for p in pairs])
    run.refresh_from_db()
    assert run.state == JudgeRun.State.BUDGET and "budget" in run.error
    # each verdict costs $0.00014: the third reaches the cap; at most one request already in flight (concurrency 1)
    # is still recorded, and nothing more is asked
    assert 3 <= run.verdicts_done == Verdict.objects.count() <= 3 + judge.max_concurrency
    assert run.cost_usd >= judge.budget_usd


def test_cancel_stops_between_requests(project, lead, server):
    judge = make_judge(project, lead, server, max_concurrency=1)
    pairs = make_pairs(project, 20)
    run = new_run(project, judge, pairs, lead)
    run_cancel(run=run)
    run.state = JudgeRun.State.RUNNING  # the worker's copy was loaded before the cancel
    judge_chunk(run, [p.pk for p in pairs])
    # noticed within STATE_CHECK_EVERY results, plus at most one request already in flight
    assert Verdict.objects.count() <= STATE_CHECK_EVERY + judge.max_concurrency
    run.refresh_from_db()
    assert run.state == JudgeRun.State.CANCELLED


@pytest.mark.parametrize("code", [401, 404])
def test_bad_credentials_or_model_fail_the_run_with_the_reason(project, lead, server, code):
    server.reject_json_schema = False
    server.default = lambda body: status(code, message="invalid api key" if code == 401 else "model not found")
    judge = make_judge(project, lead, server)
    pairs = make_pairs(project, 2)
    run = new_run(project, judge, pairs, lead)
    outcome = judge_chunk(run, [p.pk for p in pairs])
    run.refresh_from_db()
    assert run.state == JudgeRun.State.FAILED and str(code) in run.error
    assert outcome.retry_in is None and not Verdict.objects.exists()


def test_server_trouble_ends_the_chunk_with_a_retry_delay(project, lead, server):
    judge = make_judge(project, lead, server, max_concurrency=1)
    pairs = make_pairs(project, 2)
    run = new_run(project, judge, pairs, lead)
    server.script = [status(500), ok(), ok(), ok(), status(429, retry_after=300)]
    outcome = judge_chunk(run, [p.pk for p in pairs])
    assert outcome.retry_in == 300 and "429" in outcome.reason
    run.refresh_from_db()
    # the first verdict is kept; a request already in flight when the 429 came back may be kept too
    assert run.state == JudgeRun.State.RUNNING and 1 <= run.verdicts_done <= 2


def test_gold_pairs_are_judged_too(project, lead, server):
    judge = make_judge(project, lead, server, both_orders=False)
    [pair] = make_pairs(project, 1)
    pair_gold_set(pair=pair, gold="A")
    judge_chunk(new_run(project, judge, [pair], lead), [pair.pk])
    assert Verdict.objects.filter(pair=pair).count() == 1


def test_requests_are_spaced_by_the_rate_limit_even_with_concurrency(project, lead, server):
    judge = make_judge(project, lead, server, requests_per_minute=600, max_concurrency=4)  # one per 0.1 s
    JudgeConfig.objects.filter(pk=judge.pk).update(response_mode="json_object_schema", logprobs_supported=False)
    judge.refresh_from_db()  # formats already detected: every request below is a limited one
    pairs = make_pairs(project, 4)
    judge_chunk(new_run(project, judge, pairs, lead), [p.pk for p in pairs])
    arrivals = sorted(server.arrivals)
    assert len(arrivals) == 8
    # A lower bound only: a slow machine makes the gaps longer, never shorter.
    assert all(b - a >= 0.09 for a, b in zip(arrivals, arrivals[1:], strict=False))


def test_report_and_aggregate_across_judges(project, lead, server):
    from annotation.models import Label
    from judging.selectors import pair_judge_aggregate, run_report

    server.default = always("A")  # first-slot bias: flips on every pair
    biased = make_judge(project, lead, server, name="biased")
    pairs = make_pairs(project, 4)
    for pair in pairs[:3]:
        for name in ("h1", "h2"):
            Label.objects.create(project=project, pair=pair, source="external", external_annotator=name, choice="B")
    pair_gold_set(pair=pairs[3], gold="A")
    run = new_run(project, biased, pairs, lead)
    judge_chunk(run, [p.pk for p in pairs])
    run.refresh_from_db()
    report = run_report(run, n_boot=50)
    assert report["first_slot_pick_rate"] == 1.0 and report["flip_rate"] == 1.0 and report["pairs_both_orders"] == 4
    assert report["tie_rate"] == 0.0 and report["unparseable"] == 0
    assert report["longer_pick_rate"] == 0.5  # response B is the longer one in every pair; half the picks are B
    assert report["agreement_with_humans"]["n"] == 3 and report["agreement_with_gold"]["n"] == 1
    assert report["cost_per_1000_pairs"] == pytest.approx(float(run.cost_usd) * 1000 / 4)
    # a second, consistent judge that always prefers B
    server.default = lambda body: ok(
        verdict("B", 2, 9) if "Answer A" in body["messages"][1]["content"].split("[Response B]")[0] else
        verdict("A", 9, 2)
    )  # fmt: skip
    steady = make_judge(project, lead, server, name="steady", model="m2")  # another model: no shared cache
    judge_chunk(new_run(project, steady, pairs, lead), [p.pk for p in pairs])
    aggregate = pair_judge_aggregate(project)
    first = aggregate[pairs[0].pk]
    # biased: tie (inconsistent), margin 0; steady: B, margin -7 → level votes: tie; mean margin -3.5
    assert first == {"judges": 2, "winner": "tie", "mean_margin": -3.5, "consistent_judges": 1}
