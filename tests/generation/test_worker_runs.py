"""Generation runs end to end: real Celery worker processes on a real Redis broker, and a real model (SmolLM2-135M)
behind llama.cpp's OpenAI-compatible server, as generator and as rater."""

import pytest

from generation.models import Candidate, GenerationRun, Rating
from generation.services import generation_run_start
from judging.services import judge_create
from tests.generation.helpers import endpoint_generator, prompt_set
from tests.worker import celery_worker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def state(run):
    return GenerationRun.objects.get(pk=run.pk).state


@pytest.mark.redis  # the filesystem broker of `make run` has no redelivery of unacknowledged tasks
def test_a_killed_worker_loses_and_duplicates_nothing_and_a_rerun_sends_nothing(project, lead, llama_server,
                                                                                tmp_path):  # fmt: skip
    """10 prompts x 2 temperatures x 2 samples; the worker is SIGKILLed mid-run and another finishes it."""
    prompts = prompt_set(project, lead, tmp_path, n=10)
    generator = endpoint_generator(project, lead, llama_server.base_url, model="smollm2", max_concurrency=1)
    plan = {"temperatures": [0.3, 1.0], "samples": 2, "max_tokens": 12, "seed": 1}
    env = {"GENERATION_CHUNK_REQUESTS": "4", "CELERY_VISIBILITY_TIMEOUT": "15"}  # one prompt a chunk; fast redelivery
    before = llama_server.requests_received()
    with celery_worker(queues="judge", extra_env=env) as worker:
        run = generation_run_start(project=project, prompt_set=prompts, generator=generator, plan=plan, user=lead)
        assert wait_for(lambda: Candidate.objects.filter(run=run).count() >= 6, timeout=300, interval=0.05)
        worker.kill()  # SIGKILL, mid-chunk
        worker.wait()
    assert Candidate.objects.count() < 40
    with celery_worker(queues="judge", extra_env=env):
        assert wait_for(lambda: state(run) not in GenerationRun.LIVE, timeout=600)
    run.refresh_from_db()
    assert run.state == GenerationRun.State.SUCCEEDED, run.error
    # exactly one candidate per (prompt, slot), each counted once
    assert Candidate.objects.count() == 40 == run.candidates_done
    assert Candidate.objects.values("prompt", "generator", "slot_key").distinct().count() == 40
    # every request the server answered is the run's own, but for at most one in flight when the worker died
    received = llama_server.requests_received() - before
    assert run.api_calls <= received <= run.api_calls + 1
    hot = Candidate.objects.filter(temperature=1.0, prompt__external_id="q3")
    assert hot.count() == 2 and len({c.seed for c in hot}) == 2 and all(c.tokens_out > 0 for c in hot)
    assert set(Candidate.objects.values_list("finish_reason", flat=True)) <= {"stop", "length"}
    # a second run of the same plan finds every slot filled and asks the server nothing
    again = generation_run_start(project=project, prompt_set=prompts, generator=generator, plan=plan, user=lead)
    with celery_worker(queues="judge", extra_env=env):
        assert wait_for(lambda: state(again) == GenerationRun.State.SUCCEEDED, timeout=120)
    assert llama_server.requests_received() - before == received and Candidate.objects.count() == 40


def test_a_run_with_a_rater_scores_every_candidate(project, lead, llama_server, tmp_path):
    prompts = prompt_set(project, lead, tmp_path, n=2)
    generator = endpoint_generator(project, lead, llama_server.base_url, model="smollm2", max_concurrency=2)
    rater = judge_create(project=project, user=lead, name="smollm2-rater", base_url=llama_server.base_url,
                         model="smollm2", max_tokens=48, requests_per_minute=6000, max_concurrency=2)  # fmt: skip
    plan = {"temperatures": [0.7, 1.0], "samples": 1, "max_tokens": 12}
    with celery_worker(queues="judge"):
        run = generation_run_start(project=project, prompt_set=prompts, generator=generator, plan=plan, user=lead,
                                   rater=rater)  # fmt: skip
        assert wait_for(lambda: state(run) not in GenerationRun.LIVE, timeout=600), GenerationRun.objects.get(
            pk=run.pk).error  # fmt: skip
    run.refresh_from_db()
    assert run.state == GenerationRun.State.SUCCEEDED, run.error
    assert (run.candidates_done, run.ratings_done, run.ratings_planned) == (4, 4, 4)
    ratings = Rating.objects.filter(run=run, judge=rater)
    assert ratings.count() == 4 and ratings.values("candidate").distinct().count() == 4
    assert all(r.status == "unparseable" or 1 <= r.score <= 10 for r in ratings)
    rater.refresh_from_db()
    assert rater.response_mode == "json_object_schema"  # detected on llama.cpp as for verdicts
