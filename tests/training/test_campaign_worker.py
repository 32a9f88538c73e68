"""An iterative DPO campaign end to end on real components: SmolLM2-135M (CPU) writes candidates on the gpu queue, the
real llama.cpp judge rates them, best-vs-worst pairs are curated by their scores and exported, a 2-step DPO job
trains, both evaluations are judged; round 2 samples with round 1's adapter (its digest on every candidate) and
trains it further. The worker is killed in round 2's generation and again in its training: resume finishes the
round with no candidate, rating, job or evaluation twice."""

import hashlib
from decimal import Decimal
from pathlib import Path

import pytest

from generation.models import Candidate, Rating
from judging.services import judge_create
from tests.generation.helpers import prompt_set
from tests.training.conftest import smollm2_gguf
from tests.worker import celery_worker, wait_for
from training.campaigns.control import campaign_create, campaign_resume
from training.campaigns.report import campaign_report
from training.models import Campaign, CampaignRound, Evaluation, TrainingJob
from training.services.recipes import recipe_save

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

SLOTS = 4  # samples per prompt
PER_ROUND = 4


def adapter_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for weights in sorted(folder.glob("adapter_model.*")):
        digest.update(weights.read_bytes())
    return digest.hexdigest()[:16]


def test_two_rounds_resumed_after_killed_workers(project, lead, admin, llama_server, settings, tmp_path):
    gguf = smollm2_gguf()
    settings.TRAINING_HEARTBEAT_TIMEOUT = 10  # a job whose worker was killed counts as dead after 10 s
    # SmolLM2 as a rater scores nearly every answer 1 at T=0, so no best-vs-worst pair has a margin; sampled at T=2
    # about a quarter of its scores differ (noise, not judgement, but the loop's data path is the same)
    judge = judge_create(project=project, user=lead, name="smollm2", base_url=llama_server.base_url, temperature=2.0,
                         model="smollm2-135m", max_tokens=48, requests_per_minute=6000, max_concurrency=2,
                         price_input_per_m=Decimal("0.15"), price_output_per_m=Decimal("0.60"))  # fmt: skip
    pool = prompt_set(project, lead, tmp_path, n=2 * PER_ROUND + 3, name="pool")
    recipe = recipe_save(project=project, name="by scores", config={"source": "scores"}, user=lead)
    campaign = campaign_create(
        project=project, user=admin, name="loop", base_model=str(gguf), prompt_set=pool, recipe=recipe, rounds=2,
        per_round=PER_ROUND, judge=judge, eval_prompts=3, plan={"temperatures": [1.0], "samples": SLOTS,
                                                                 "max_tokens": 24, "seed": 3},
        pairing={"strategy": "best_worst", "min_margin": 1, "include_flagged": True}, preset="smoke",
        settings_={"max_length": 96, "learning_rate": 1e-2}, reference="initial",
    )  # fmt: skip
    env = {
        "EXPORT_ROOT": str(settings.EXPORT_ROOT),
        "TRAINING_ROOT": str(settings.TRAINING_ROOT),
        "MODEL_CACHE": str(settings.MODEL_CACHE),
        "HF_HUB_OFFLINE": "1",
        "GENERATION_LOCAL_BATCH": "1",
    }  # fmt: skip  (one prompt per generate call: a window to kill in)

    def round_(number):
        return CampaignRound.objects.filter(campaign=campaign, number=number).first()

    def state():
        return Campaign.objects.get(pk=campaign.pk)

    with celery_worker(queues="gpu,judge,default", extra_env=env) as worker:
        # round 2's generation has written some of its candidates: the worker dies
        assert wait_for(
            lambda: state().state != "running"
            or (
                (r := round_(2)) is not None
                and r.generation_run_id
                and Candidate.objects.filter(run=r.generation_run_id).exists()
            ),
            timeout=900,
            interval=0.05,
        )
        assert state().state == "running", (state().error, state().stage)
        worker.kill()
        worker.wait()
    second = round_(2)
    written = Candidate.objects.filter(run=second.generation_run_id).count()
    assert 0 < written < PER_ROUND * SLOTS, written
    first = round_(1)
    assert first.state == "succeeded" and first.report["vs_base"] is not None and first.report["vs_previous"] is None

    with celery_worker(queues="gpu,judge,default", extra_env=env) as worker:
        campaign_resume(campaign=state(), user=admin)  # the run's worker died: queued again, only what is missing
        assert wait_for(
            lambda: state().state != "running" or ((j := round_(2).job) is not None and j.state == "running"),
            timeout=600,
            interval=0.1,
        )
        assert state().state == "running", (
            state().error, round_(2).detail)  # fmt: skip
        worker.kill()  # mid-training: the runner child dies with it
        worker.wait()
    job = round_(2).job
    assert job.state == "running"  # as far as the database knows

    with celery_worker(queues="gpu,judge,default", extra_env=env):
        # once its heartbeat is stale, resume queues the same job again
        assert wait_for(lambda: campaign_resume(campaign=state(), user=admin) and
                        TrainingJob.objects.get(pk=job.pk).state != "running", timeout=120, interval=1)  # fmt: skip
        assert wait_for(lambda: state().state != "running", timeout=900), (state().stage, round_(2).detail)
    campaign = state()
    assert campaign.state == "finished", (campaign.error, campaign.stage)

    first, second = round_(1), round_(2)
    assert second.job_id == job.pk and TrainingJob.objects.filter(project=project).count() == 2  # the same job
    assert second.job.state == "succeeded" and second.job.spec["init_adapter"].endswith("/adapter")
    # round 1 sampled with the base model; round 2 with round 1's adapter, named by its weights' digest
    assert set(Candidate.objects.filter(run=first.generation_run_id).values_list("model", flat=True)) == {str(gguf)}
    adapter = Path(second.generator.adapter)
    assert second.generator.adapter == second.job.spec["init_adapter"]
    round2_models = set(Candidate.objects.filter(run=second.generation_run_id).values_list("model", flat=True))
    assert round2_models == {f"{gguf.name}+lora:{adapter_digest(adapter)}"}, round2_models
    # nothing twice: one candidate per slot (the killed run's and the resumed one's together), one rating each
    candidates = Candidate.objects.filter(generator=second.generator, prompt_id__in=campaign.batches[1])
    assert candidates.count() == PER_ROUND * SLOTS
    assert Rating.objects.filter(candidate__in=candidates, judge=judge).count() == PER_ROUND * SLOTS
    assert set(campaign.batches[0]).isdisjoint(campaign.batches[1])  # fresh prompts each round
    assert Evaluation.objects.filter(job=first.job).count() == 1 and Evaluation.objects.filter(job=job).count() == 2
    assert second.eval_previous.baseline_job_id == first.job_id

    report = campaign_report(campaign)
    assert [row["round"] for row in report["rows"]] == [1, 2]
    row = report["rows"][1]
    assert 0 <= row["vs_base"]["win_rate"] <= 1 and 0 <= row["vs_previous"]["win_rate"] <= 1
    assert row["vs_base"]["win_rate_ci95"][0] <= row["vs_base"]["win_rate"] <= row["vs_base"]["win_rate_ci95"][1]
    funnel = row["funnel"]
    assert funnel["prompts"] == PER_ROUND and funnel["candidates"] == PER_ROUND * SLOTS
    assert 1 <= funnel["pairs"] <= PER_ROUND and funnel["rows_train"] >= 1 and funnel["steps"] == 2
    assert row["cost_usd"] > 0 and row["gpu_seconds"] > 0 and row["mean_answer_chars"] > 0
    assert report["chart"]["rounds"] == [1, 2] and len(report["chart"]["win_rate_vs_previous"]) == 2
