"""Reward models as scorers, in process: a run's verdicts from two rewards per pair (order-free winner and margin),
each response scored once (the reply cache, shared by pairs and re-runs), a chunk delivered twice writing nothing
twice; candidate ratings by reward; the service's validation; the audit's accuracy beside the length and position
baselines, its slices, held-out pairs and warnings; and the real scorer (SmolLM2 as a sequence classifier) giving
the same reward to a conversation alone or padded in a batch. The worker path is in tests/training/
test_reward_worker.py."""

import pytest
from django.core.exceptions import ValidationError

from annotation.models import Label
from judging.audit import scorer_audit
from judging.models import CachedReply, JudgeConfig, JudgeRun, PairJudgement, Verdict
from judging.rewards.conversations import conversation
from judging.rewards.engine import reward_chunk
from judging.services import prompt_update, reward_model_create
from tests.factories import make_pairs
from tests.training.conftest import smollm2_gguf

pytestmark = pytest.mark.django_db


class LengthScorer:
    """Reward = the response's length; counts what it was asked to score."""

    def __init__(self):
        self.asked = []

    def __call__(self, conversations):
        self.asked += conversations
        return [(float(len(c[-1]["content"])), 7) for c in conversations]


@pytest.fixture
def reward_model(project, lead):
    return reward_model_create(project=project, user=lead, name="rm", model=str(smollm2_gguf()))


def new_run(project, judge, pairs, lead):
    return JudgeRun.objects.create(
        project=project, judge=judge, prompt_version=judge.prompt_versions.get(), pair_ids=[p.pk for p in pairs],
        created_by=lead, requests_planned=len(pairs), state=JudgeRun.State.RUNNING,
    )  # fmt: skip


def test_a_reward_run_writes_order_free_verdicts_and_scores_each_response_once(project, lead, reward_model):
    pairs = make_pairs(project, 3)
    pairs[2].response_b = pairs[2].response_a  # a tie, and a response shared by two slots
    pairs[2].save()
    run = new_run(project, reward_model, pairs, lead)
    scorer = LengthScorer()
    assert reward_chunk(run, [p.pk for p in pairs], scorer, "rm-identity") == 3
    assert len(scorer.asked) == 5  # six responses, one repeated
    verdicts = {v.pair_id: v for v in Verdict.objects.filter(run=run)}
    assert {v.order for v in verdicts.values()} == {"ab"}
    first = verdicts[pairs[0].pk]
    assert first.winner == "B" and first.score_b - first.score_a == len(pairs[0].response_b) - len(pairs[0].response_a)
    assert verdicts[pairs[2].pk].winner == "tie"
    judgement = PairJudgement.objects.get(pair=pairs[0], judge=reward_model)
    assert judgement.margin == first.score_a - first.score_b and judgement.consistent and judgement.orders == 1
    run.refresh_from_db()
    assert (run.verdicts_done, run.api_calls, run.cost_usd, run.tokens_in) == (3, 0, 0, 5 * 7)
    # Delivered again: nothing scored, nothing written twice.
    assert reward_chunk(run, [p.pk for p in pairs], scorer, "rm-identity") == 0
    assert len(scorer.asked) == 5 and Verdict.objects.filter(run=run).count() == 3
    # A second run of the same model on the same pairs (its verdicts deleted): the cache answers, nothing is scored.
    Verdict.objects.filter(run=run).delete()
    again = new_run(project, reward_model, pairs, lead)
    assert reward_chunk(again, [p.pk for p in pairs], scorer, "rm-identity") == 3
    assert len(scorer.asked) == 5 and Verdict.objects.filter(run=again, from_cache=True).count() == 3
    again.refresh_from_db()
    assert again.cache_hits == 3 and again.tokens_in == 0
    # Another model (a different identity) scores afresh.
    Verdict.objects.all().delete()
    third = new_run(project, reward_model, pairs, lead)
    reward_chunk(third, [p.pk for p in pairs], scorer, "another-adapter")
    assert len(scorer.asked) == 10
    key_count = CachedReply.objects.count()
    assert key_count == 10


def test_reward_model_settings_are_validated(project, lead, reward_model, tmp_path):
    with pytest.raises(ValidationError) as err:
        reward_model_create(project=project, user=lead, name="bad", model="not a model")
    assert "model" in err.value.message_dict
    with pytest.raises(ValidationError) as err:
        reward_model_create(project=project, user=lead, name="bad", model=str(smollm2_gguf()), adapter=str(tmp_path))
    assert "adapter" in err.value.message_dict and "adapter_config.json" in err.value.message_dict["adapter"][0]
    with pytest.raises(ValidationError):
        prompt_update(judge=reward_model, system="", template="{prompt}", user=lead)
    assert reward_model.kind == JudgeConfig.Kind.REWARD_MODEL and not reward_model.both_orders
    assert JudgeConfig.objects.filter(name="bad").count() == 0


def label(pair, who, choice, **criteria):
    return Label.objects.create(project=pair.project, pair=pair, source=Label.Source.EXTERNAL, external_annotator=who,
                                choice=choice, criteria=criteria)  # fmt: skip


def judgement(judge, pair, winner):
    return PairJudgement.objects.create(pair=pair, judge=judge, prompt_version=judge.prompt_versions.get(),
                                        winner=winner, consistent=True, margin={"A": 1, "B": -1}.get(winner, 0),
                                        orders=1)  # fmt: skip


def test_the_audit_compares_a_scorer_with_the_length_and_position_baselines(project, lead, reward_model):
    pairs = make_pairs(project, 10)  # make_pairs: B is always the longer answer
    for i, pair in enumerate(pairs):
        pair.metadata = {"topic": "math" if i < 5 else "chat", "uid": f"u{i}"}
        pair.save()
        human = "B" if i < 7 else "A"  # people prefer the longer answer 7 times out of 10
        label(pair, "r1", human, harmless="A" if i < 4 else "B")
        label(pair, "r2", human)
        # The scorer agrees with people on 8 pairs (it errs on pairs 0 and 9), and ties on pair 5.
        judgement(reward_model, pair, "tie" if i == 5 else ({"A": "B", "B": "A"}[human] if i in (0, 9) else human))
    project.criteria = ["harmless"]
    project.save()
    report = scorer_audit(reward_model, project, n_boot=50)
    assert report["pairs_with_human_majority"] == 10
    assert report["scorer"]["accuracy"] == pytest.approx(7.5 / 10) and report["scorer"]["n"] == 10
    lo, hi = report["scorer"]["ci95"]
    assert lo < 0.75 < hi
    assert report["longer"]["accuracy"] == pytest.approx(0.7) and report["position_a"]["accuracy"] == pytest.approx(0.3)
    assert report["scorer_ties"] == 1 and report["kappa"]["n"] == 10
    topics = {s["value"]: s for s in report["slices"] if s["slice"] == "metadata topic"}
    assert set(topics) == {"chat", "math"} and topics["math"]["scorer"]["n"] == 5
    assert not any(s["slice"] == "metadata uid" for s in report["slices"])  # ten values of ten: an id, not a slice
    harmless = report["criteria"][0]
    assert harmless["criterion"] == "harmless" and harmless["n"] == 10  # a majority on each (r1 alone voted)
    assert any("interval" in w for w in report["warnings"]) and any("Only 10" in w for w in report["warnings"])
    # Held out: the pairs a reward model was trained on are left out.
    reward_model.trained_on = [pairs[0].pk, pairs[9].pk]
    reward_model.save()
    report = scorer_audit(reward_model, project, n_boot=0)
    assert report["scorer"]["n"] == 8 and report["scorer"]["accuracy"] == pytest.approx(7.5 / 8)
    assert report["held_out_excluded"] == 2
    # A scorer that always picks the longer answer is no better than the length baseline: it says so.
    PairJudgement.objects.filter(judge=reward_model).update(winner="B")
    report = scorer_audit(reward_model, project, n_boot=0)
    assert report["scorer"]["accuracy"] == report["longer"]["accuracy"]
    assert report["warnings"][0].startswith("No better than picking the longer response")


def test_the_real_scorer_gives_a_conversation_the_same_reward_alone_or_padded_in_a_batch():
    from judging.rewards.scorer import scorer_for

    score_fn, identity = scorer_for(str(smollm2_gguf()))
    assert identity == smollm2_gguf().name or identity.endswith(".gguf")
    prompt = [{"role": "user", "content": "What is the capital of France?"}]
    items = [conversation(prompt, "Paris."), conversation(prompt, "The capital of France is Paris, a large city."),
             conversation("Say hi", "Hi!")]  # fmt: skip
    together = score_fn(items)
    alone = [score_fn([c])[0] for c in items]
    assert [t for _, t in together] == [t for _, t in alone] and all(t > 5 for _, t in together)
    assert [r for r, _ in together] == pytest.approx([r for r, _ in alone], abs=1e-4)
    assert len({round(r, 4) for r, _ in together}) == 3


def test_a_lead_adds_a_reward_model_on_the_page_and_reads_its_audit(project, as_lead, lead):
    from tests.conftest import csrf

    url = f"/p/{project.slug}/judges/reward-models/new/"
    token = csrf(as_lead, url)
    bad = as_lead.post(url, {"csrfmiddlewaretoken": token, "name": "rm", "model": "/nowhere/model"})
    assert bad.status_code == 200 and "no such model folder" in bad.content.decode()
    ok = as_lead.post(url, {"csrfmiddlewaretoken": token, "name": "rm", "model": str(smollm2_gguf())})
    assert ok.status_code == 302
    judge = JudgeConfig.objects.get(project=project, name="rm")
    assert judge.kind == JudgeConfig.Kind.REWARD_MODEL and not judge.both_orders
    page = as_lead.get(f"/p/{project.slug}/judges/").content.decode()
    assert "reward model" in page and f"/judges/{judge.public_id}/audit/" in page
    pairs = make_pairs(project, 4)
    for i, pair in enumerate(pairs):
        label(pair, "r1", "B" if i else "A")
        judgement(judge, pair, "B")
    audit = as_lead.get(f"/p/{project.slug}/judges/{judge.public_id}/audit/").content.decode()
    assert 'data-row="longer"' in audit and "0.750" in audit and "No better than picking the longer" in audit
    # The edit page of a reward model is its own form, not the LLM judge's.
    assert "reward-model-form" in as_lead.get(f"/p/{project.slug}/judges/{judge.public_id}/").content.decode()
    api = as_lead.get(f"/api/v1/projects/{project.slug}/judges/{judge.public_id}/audit/").json()
    assert api["scorer"]["accuracy"] == 0.75 and api["longer"]["accuracy"] == 0.75 and api["kappa"]["n"] == 4


def test_the_api_creates_reward_models_and_refuses_an_llm_judge_without_an_endpoint(project, lead):
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(lead)
    url = f"/api/v1/projects/{project.slug}/judges/"
    made = api.post(url, {"kind": "reward_model", "name": "rm2", "model": str(smollm2_gguf())}, format="json")
    assert made.status_code == 201 and made.json()["kind"] == "reward_model" and made.json()["base_url"] == ""
    bad = api.post(url, {"kind": "reward_model", "name": "rm3", "model": "nope"}, format="json")
    assert bad.status_code == 400 and "model" in bad.json()
    no_url = api.post(url, {"name": "llm", "model": "m"}, format="json")
    assert no_url.status_code == 400 and "base_url" in no_url.json()


def test_reward_models_stay_out_of_the_llm_judge_aggregate_and_of_automatic_evaluations(project, lead, reward_model):
    from judging.selectors import pair_judge_aggregate
    from judging.services import judge_create
    from training.evaluations.flow import auto_judge

    llm = judge_create(project=project, user=lead, name="llm", base_url="http://127.0.0.1:9/v1", model="m")
    pair = make_pairs(project, 1)[0]
    judgement(llm, pair, "A")
    judgement(reward_model, pair, "B")  # raw reward differences: another scale, stacked only through composites
    assert pair_judge_aggregate(project)[pair.pk] == {"judges": 1, "winner": "A", "mean_margin": 1,
                                                      "consistent_judges": 1}  # fmt: skip
    new_run(project, reward_model, [pair], lead)  # the last run on the project is the reward model's
    assert auto_judge(project) == llm


def test_a_scoring_failure_fails_the_run_with_its_reason(project, lead, reward_model):
    from judging.rewards.engine import reward_run

    pairs = make_pairs(project, 2)
    run = new_run(project, reward_model, pairs, lead)
    run.state = JudgeRun.State.QUEUED
    run.save()

    def broken(conversations):
        raise ValueError("Conversation roles must alternate user/assistant")

    with pytest.raises(ValueError):
        reward_run(run, lambda: (broken, "id"))
    run.refresh_from_db()
    assert run.state == JudgeRun.State.FAILED and "roles must alternate" in run.error
    failed = new_run(project, reward_model, pairs, lead)
    failed.state = JudgeRun.State.QUEUED
    failed.save()
    reward_run(failed, lambda: (_ for _ in ()).throw(OSError("no such model")))
    failed.refresh_from_db()
    assert failed.state == JudgeRun.State.FAILED and "Could not load the reward model" in failed.error


def test_a_reward_models_weights_cannot_change_and_long_paths_are_refused_cleanly(project, lead, reward_model):
    from judging.services import judge_update

    with pytest.raises(ValidationError) as err:
        judge_update(judge=reward_model, model="/somewhere/else.gguf")
    assert "model" in err.value.message_dict
    assert judge_update(judge=reward_model, name="renamed").name == "renamed"
    with pytest.raises(ValidationError) as err:
        reward_model_create(project=project, user=lead, name="long", model="/" + "x" * 300 + ".gguf")
    assert "not a usable path" in err.value.message_dict["model"][0]
