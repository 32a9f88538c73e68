"""A finished job evaluates itself against its base model, end to end on real components: a 2-step DPO job on
SmolLM2-135M (CPU), both models answering the export's held-out prompts on the gpu queue, the real llama.cpp judge
comparing them in both orders, the report (win rate and LC with intervals, the judge's audit, per-prompt rows, a
task-type breakdown), people's A/B labels beside it; and an evaluation whose judge fails mid-run resumes without
asking any verdict twice."""

from decimal import Decimal

import pytest

from annotation.models import Label, Membership, Pair
from generation.models import Candidate
from judging.models import JudgeConfig, JudgeRun, Verdict
from judging.services import judge_create
from tests.judging.fake_openai import FakeOpenAI, ok, status, verdict
from tests.training.conftest import labelled_export, smollm2_gguf
from tests.worker import celery_worker, wait_for
from training.models import Evaluation, TrainingJob
from training.services.evaluations import (
    evaluation_refresh,
    evaluation_resume,
    evaluation_send_to_people,
    evaluation_start,
)
from training.services.jobs import job_create

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

# lr at the cap so two LoRA steps move the model enough to answer differently from its base
JOB = {"max_steps": 2, "max_length": 96, "batch_size": 2, "eval_pairs": 4, "eval_generations": 1,
       "eval_max_new_tokens": 12, "eval_prompts": 4, "learning_rate": 1e-2}  # fmt: skip


def ended(evaluation, timeout=600):
    assert wait_for(lambda: Evaluation.objects.get(pk=evaluation.pk).state not in Evaluation.LIVE, timeout=timeout)
    evaluation.refresh_from_db()
    return evaluation


def test_a_finished_job_is_judged_against_its_base(project, lead, annotator, admin, llama_server, settings):
    gguf = str(smollm2_gguf())
    judge = judge_create(project=project, user=lead, name="smollm2", base_url=llama_server.base_url,
                         model="smollm2-135m", max_tokens=48, requests_per_minute=6000, max_concurrency=2,
                         price_input_per_m=Decimal("0.15"), price_output_per_m=Decimal("0.60"))  # fmt: skip
    export = labelled_export(project, lead, "dpo", n=16)
    for i, pair in enumerate(Pair.objects.filter(project=project).order_by("pk")):
        Pair.objects.filter(pk=pair.pk).update(metadata={"task_type": "maths" if i % 2 else "writing"})
    env = {"EXPORT_ROOT": str(settings.EXPORT_ROOT), "TRAINING_ROOT": str(settings.TRAINING_ROOT),
           "MODEL_CACHE": str(settings.MODEL_CACHE), "HF_HUB_OFFLINE": "1"}  # fmt: skip
    with celery_worker(queues="gpu,judge,default", extra_env=env):
        job = job_create(export=export, user=admin, settings_={**JOB, "base_model": gguf})
        assert wait_for(lambda: Evaluation.objects.filter(job=job).exists(), timeout=600), \
            TrainingJob.objects.get(pk=job.pk).log_tail  # fmt: skip
        job.refresh_from_db()
        assert job.state == "succeeded"
        # the runner's own held-out figures: coherence and drift beside the preference accuracies
        assert job.evaluation["perplexity"]["tokens"] > 0 and job.evaluation["perplexity"]["base"] > 1
        assert job.evaluation["kl"]["n"] == 1 and job.evaluation["kl"]["tokens"] > 0
        evaluation = ended(Evaluation.objects.get(job=job))
        assert evaluation.state == "succeeded", evaluation.error
        assert evaluation.automatic and evaluation.judge == judge
        report = evaluation.report
        prompts = evaluation.tuned_run.requests_planned
        assert report["prompts"] == prompts == evaluation.baseline_run.requests_planned == export.rows_test
        assert report["n"] == prompts - report["unjudged"] and report["n"] >= 1
        assert len(evaluation.pair_ids) + report["identical"] == prompts and evaluation.pair_ids, report
        assert 0 <= report["win_rate"] <= 1 and report["win_rate_ci95"][0] <= report["win_rate"]
        assert report["lc_win_rate"] is not None and report["verdict"] in ("working", "unclear", "worse", "too_few",
                                                                            "judge_at_chance")  # fmt: skip
        # SmolLM2 reads the order, not the answers; with no human labels judged, it is at best unaudited
        assert report["audit"]["status"] in ("chance", "unaudited")
        assert 1 <= report["audit"]["pairs_both_orders"] <= len(evaluation.pair_ids)  # SmolLM2 fails JSON at times
        assert {r["group"] for r in report["rows"]} <= {"maths", "writing"} and report["by_group"]["key"] == "task_type"
        row = report["rows"][0]
        assert row["tuned"] and row["baseline"] and row["winner"] in ("tuned", "baseline", "tie")
        verdicts = Verdict.objects.filter(run=evaluation.judge_run)
        assert verdicts.count() == 2 * len(evaluation.pair_ids)
        # the A/B pairs live in the evaluation project, closed to people until sent, and never in the training pool
        ab = evaluation.ab_project
        assert ab != project and not Pair.objects.filter(project=project, pk__in=[p for _, p, _ in evaluation.pair_ids])
        assert not Pair.objects.filter(project=ab, open_slots__gt=0).exists()
        evaluation = evaluation_send_to_people(evaluation=evaluation)
        assert Membership.objects.filter(project=ab, user=annotator).exists()
        assert Pair.objects.filter(project=ab, open_slots=ab.overlap_k).count() == len(evaluation.pair_ids)
        for _, pair_id, tuned_is_a in evaluation.pair_ids:
            Label.objects.create(
                project=ab,
                pair_id=pair_id,
                source="external",
                external_annotator="rater-1",
                choice="A" if tuned_is_a else "B",
            )  # fmt: skip (the browser test labels by hand)
        report = evaluation_refresh(evaluation=evaluation).report
        assert report["human"]["n"] == len(evaluation.pair_ids) and report["human"]["win_rate"] == 1.0

        # A second judge fails after two verdicts (a revoked key): the evaluation fails, keeps what it has, and a
        # resume asks only for the missing verdicts. Both models' answers are reused: no prompt is answered again.
        with FakeOpenAI() as fake:
            flaky = judge_create(project=project, user=lead, name="flaky", base_url=fake.base_url, model="m",
                                 max_concurrency=1, requests_per_minute=6000)  # fmt: skip
            JudgeConfig.objects.filter(pk=flaky.pk).update(response_mode="json_schema", logprobs_supported=False)
            valid = fake.default
            fake.script = [ok(verdict("A")), ok(verdict("B"))]
            fake.default = lambda body: status(401, message="invalid api key")  # from the third request on
            answers = Candidate.objects.count()
            second = evaluation_start(job=job, user=admin, judge=flaky, plan=evaluation.plan, limit=evaluation.limit)
            second = ended(second)
            assert second.state == "failed" and "judge run stopped" in second.error, second.error
            assert Candidate.objects.count() == answers
            assert Verdict.objects.filter(judge=flaky).count() == 2, (
                list(Verdict.objects.filter(judge=flaky).values_list("status", "order", "pair_id", "rationale")),
                len(fake.requests),
                second.error,
            )
            fake.default = valid  # a new key
            asked_before = len(fake.requests)
            second = ended(evaluation_resume(evaluation=second, user=admin))
            assert second.state == "succeeded", second.error
            planned = 2 * len(second.pair_ids)
            assert Verdict.objects.filter(judge=flaky).count() == planned
            assert len(fake.requests) - asked_before == planned - 2  # nothing asked twice
            assert JudgeRun.objects.filter(judge=flaky).count() == 2
            assert second.pair_ids == evaluation.pair_ids  # the same answers, the same pairs
            assert second.report["n"] == report["n"]
