"""A reward model end to end on CPU through real workers on the ``gpu`` queue: trained with TRL's RewardTrainer on
SmolLM2-135M (a classification head, LoRA) from an export the app made, turned into a scorer, run over the
project's pairs (order-free verdicts, each response scored once), audited on the held-out pairs beside the length
baseline and kappa, and used as the rater of a local generator's candidates so pairs are built best vs worst by
reward."""

import pytest

from generation.models import Candidate, GenerationRun, PairOrigin, Rating
from generation.services import generation_run_start, generator_create, pairs_build, pairs_options
from judging.audit import scorer_audit
from judging.models import JudgeConfig, JudgeRun, PairJudgement, Verdict
from judging.services import run_start
from tests.generation.helpers import prompt_set
from tests.training.conftest import labelled_export, smollm2_gguf
from tests.training.test_training_worker import finished
from tests.worker import wait_for
from training.models import TrainingMetric
from training.services.jobs import job_create, job_reward_model

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


def test_train_a_reward_model_score_audit_and_rate_candidates_with_it(project, lead, admin, gpu_worker, tmp_path):
    gguf = str(smollm2_gguf())
    export = labelled_export(project, lead, "dpo")
    job = job_create(export=export, user=admin, preset="reward-lora",
                     settings_={"max_steps": 2, "max_length": 256, "batch_size": 2, "base_model": gguf})  # fmt: skip
    job = finished(job)
    assert job.state == "succeeded", (job.error, job.log_tail)
    metrics = dict(TrainingMetric.objects.filter(job=job).values_list("step", "values"))
    assert sorted(metrics) == [1, 2] and all("loss" in v and "accuracy" in v for v in metrics.values())
    assert job.evaluation["n"] > 0 and job.evaluation["length_baseline"]["accuracy"] is not None
    reward_model = job_reward_model(job=job, user=admin)
    assert job_reward_model(job=job, user=admin) == reward_model  # a double click: the same scorer
    assert reward_model.kind == JudgeConfig.Kind.REWARD_MODEL and reward_model.adapter and reward_model.trained_on

    run = run_start(project=project, judge=reward_model, user=lead)
    assert wait_for(lambda: JudgeRun.objects.get(pk=run.pk).state not in JudgeRun.LIVE, timeout=300)
    run.refresh_from_db()
    assert run.state == "succeeded", run.error
    pairs = len(run.pair_ids)
    assert run.requests_planned == pairs == Verdict.objects.filter(run=run).count()
    assert PairJudgement.objects.filter(judge=reward_model).count() == pairs
    assert run.api_calls == 0 and run.cost_usd == 0 and run.tokens_in > 0
    rewards = {r for v in Verdict.objects.filter(run=run) for r in (v.score_a, v.score_b)}
    assert len(rewards) > 2  # real, varied rewards

    audit = scorer_audit(reward_model, project, n_boot=50)
    assert audit["held_out_excluded"] == len(reward_model.trained_on)
    assert audit["scorer"]["n"] == pairs - len(reward_model.trained_on) > 0
    assert audit["longer"]["accuracy"] is not None and audit["kappa"]["n"] == audit["scorer"]["n"]

    # The reward model rates a local generator's candidates on the gpu queue; pairs go best vs worst by reward.
    prompts = prompt_set(project, lead, tmp_path, n=2)
    base = generator_create(project=project, user=lead, name="base", kind="local", model=gguf)
    gen = generation_run_start(project=project, prompt_set=prompts, generator=base, rater=reward_model, user=lead,
                               plan={"temperatures": [1.0], "samples": 3, "max_tokens": 8})  # fmt: skip
    assert wait_for(lambda: GenerationRun.objects.get(pk=gen.pk).state not in GenerationRun.LIVE, timeout=300)
    gen.refresh_from_db()
    assert gen.state == "succeeded" and gen.ratings_done == 6, gen.error
    ratings = Rating.objects.filter(judge=reward_model, candidate__prompt__prompt_set=prompts)
    assert ratings.count() == Candidate.objects.filter(prompt__prompt_set=prompts).count() == 6
    options = pairs_options(
        {"strategy": "best_worst", "min_margin": 0, "rater": reward_model.pk, "include_flagged": True}
    )  # 8-token answers are all flagged as cut off
    built = pairs_build(prompt_set=prompts, user=lead, options=options)
    assert built.created == 2
    # Each pair is its prompt's best and worst candidate by reward.
    for origin in PairOrigin.objects.filter(pair__project=project, candidate_a__prompt__prompt_set=prompts):
        by_reward = sorted(Rating.objects.filter(judge=reward_model, candidate__prompt=origin.candidate_a.prompt)
                           .values_list("score", flat=True))  # fmt: skip
        assert {origin.candidate_a.ratings.get().score, origin.candidate_b.ratings.get().score} == {
            by_reward[0],
            by_reward[-1],
        }
