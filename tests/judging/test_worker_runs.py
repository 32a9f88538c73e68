"""Judge runs end to end: a real Celery worker process, a real broker, and a real model behind llama.cpp's
OpenAI-compatible server. The 135M model nearly always says "A": these tests check the plumbing and the bias
report (a high first-slot rate, many flips), not verdict quality."""

import os
from decimal import Decimal
from pathlib import Path

import pytest

from annotation.models import Label
from annotation.services.calibration import pair_gold_set
from judging.models import JudgeConfig, JudgeRun, Verdict
from judging.selectors import run_report
from judging.services import judge_create, run_start
from tests.factories import make_pairs
from tests.worker import celery_worker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def small_judge(project, lead, llama_server, **kw):
    values = {"name": "smollm2", "base_url": llama_server.base_url, "model": "smollm2-135m", "max_tokens": 48,
              "requests_per_minute": 6000, "max_concurrency": 2, "price_input_per_m": Decimal("0.15"),
              "price_output_per_m": Decimal("0.60"), **kw}  # fmt: skip
    return judge_create(project=project, user=lead, **values)


def state(run):
    return JudgeRun.objects.get(pk=run.pk).state


def test_a_judge_run_on_a_worker_judges_every_pair_in_both_orders(project, lead, llama_server, settings):
    pairs = make_pairs(project, 8)
    for pair in pairs[:4]:  # labels from elsewhere, for agreement with humans
        for name in ("x", "y"):
            Label.objects.create(project=project, pair=pair, source="external", external_annotator=name, choice="A")
    for pair in pairs[4:7]:
        pair_gold_set(pair=pair, gold="B")
    judge = small_judge(project, lead, llama_server, api_key_env="ARBITER_TEST_JUDGE_KEY")
    secret = "sk-test-key-that-must-never-be-logged"
    with celery_worker(queues="judge", extra_env={"ARBITER_TEST_JUDGE_KEY": secret}):
        run = run_start(project=project, judge=judge, user=lead)
        assert wait_for(lambda: state(run) not in JudgeRun.LIVE, timeout=600), JudgeRun.objects.get(pk=run.pk).error
    worker_log = (Path(settings.VAR_DIR) / f"test-worker-{os.getpid()}.log").read_text()
    assert "judging.tasks.judge_run_chunk_task" in worker_log and secret not in worker_log
    run.refresh_from_db()
    assert run.state == JudgeRun.State.SUCCEEDED, run.error
    verdicts = Verdict.objects.filter(run=run)
    assert verdicts.count() == 16
    assert set(verdicts.values_list("order", flat=True)) == {"ab", "ba"}
    assert {p.pk for p in pairs} == set(verdicts.values_list("pair_id", flat=True))
    judge.refresh_from_db()
    assert judge.response_mode == "json_object_schema"  # llama.cpp refuses json_schema with HTTP 500
    report = run_report(run)
    assert report["verdicts"] == 16 and report["parsed"] + report["unparseable"] == 16
    assert report["first_slot_pick_rate"] is not None and report["flip_rate"] is not None
    assert report["agreement_with_humans"]["n"] > 0 and report["agreement_with_gold"]["n"] == 3
    assert run.tokens_in > 0 and run.cost_usd > 0 and report["cost_per_1000_pairs"] > 0


@pytest.mark.redis  # the filesystem broker of `make run` has no redelivery of unacknowledged tasks
def test_killing_the_worker_mid_run_loses_and_duplicates_nothing(project, lead, llama_server):
    make_pairs(project, 6)
    judge = small_judge(project, lead, llama_server, max_concurrency=1)
    # the format and logprobs detected as the first test detects them (logprobs off: each call half as long), so
    # every request counted below is one of the run's own
    JudgeConfig.objects.filter(pk=judge.pk).update(response_mode="json_object_schema", logprobs_supported=False)
    env = {"JUDGE_CHUNK_PAIRS": "2", "CELERY_VISIBILITY_TIMEOUT": "15"}  # redelivery after a kill in seconds
    before = llama_server.requests_received()
    with celery_worker(queues="judge", extra_env=env) as worker:
        run = run_start(project=project, judge=judge, user=lead)
        assert wait_for(lambda: Verdict.objects.filter(judge=judge).count() >= 3, timeout=300, interval=0.05)
        worker.kill()  # SIGKILL, mid-chunk
        worker.wait()
    killed_at = Verdict.objects.filter(judge=judge).count()
    assert killed_at < 12
    with celery_worker(queues="judge", extra_env=env):
        assert wait_for(lambda: state(run) not in JudgeRun.LIVE, timeout=600)
    run.refresh_from_db()
    assert run.state == JudgeRun.State.SUCCEEDED, run.error
    # exactly one verdict per (pair, order), each counted once
    assert Verdict.objects.filter(judge=judge).count() == 12 == run.verdicts_done
    # every request the server answered is accounted for: the run's own calls, and at most one request in flight
    # when the worker died
    received = llama_server.requests_received() - before
    assert received <= run.api_calls + 1
    # a second run over the same pairs asks the server nothing
    again = run_start(project=project, judge=judge, user=lead)
    with celery_worker(queues="judge", extra_env=env):
        assert wait_for(lambda: state(again) == JudgeRun.State.SUCCEEDED, timeout=120)
    assert llama_server.requests_received() - before == received
