"""An evaluation's report from its rows, without workers: answers, A/B pairs and verdicts written directly, then the
evaluation moved on as the tasks move it. Checks the bookkeeping the maths depends on: both orders averaged, a
judge that flips counted as a tie and as inconsistent, identical answers as ties nobody judges, a pair found again
the other way round (baseline as A) read in tuned terms, the task-type breakdown; and the pages and API show it,
with model output escaped."""

import pytest

from annotation.imports.fields import content_hash
from annotation.models import Pair
from generation.imports import prompts_import
from generation.models import Candidate, GenerationRun, Prompt
from generation.plan import plan_clean, slots
from judging.models import JudgeRun, Verdict
from judging.services import judge_create
from tests.conftest import login
from tests.generation.helpers import endpoint_generator, write_jsonl
from tests.training.conftest import labelled_export
from training.evaluations.flow import ab_project_for, evaluation_advance
from training.models import Evaluation, TrainingJob

pytestmark = pytest.mark.django_db(transaction=True)

HOSTILE = '<script>alert("x")</script>'


@pytest.fixture
def evaluation(project, lead, admin, tmp_path):
    export = labelled_export(project, lead, "dpo", n=8)
    job = TrainingJob.objects.create(project=project, export=export, spec={"base_model": "m", "seed": 0},
                                     state="succeeded", created_by=admin)  # fmt: skip
    records = [{"id": f"q{i}", "prompt": f"Question {i}?", "task_type": "maths" if i < 2 else "writing"}
               for i in range(4)]  # fmt: skip
    prompts = prompts_import(project=project, path=write_jsonl(tmp_path / "p.jsonl", records), name="held", user=lead)
    tuned = endpoint_generator(project, lead, "http://127.0.0.1:9/v1", name="tuned-gen")
    base = endpoint_generator(project, lead, "http://127.0.0.1:9/v1", name="base-gen")
    plan = plan_clean({"temperatures": [0.7], "samples": 1, "max_tokens": 32})
    slot = slots(plan)[0]
    ids = list(Prompt.objects.filter(prompt_set=prompts).order_by("pk").values_list("pk", flat=True))
    runs = {}
    texts = {  # prompt index -> (tuned, baseline)
        0: ("A careful answer of some length.", "Short."),
        1: (f"Tuned answer {HOSTILE}", "Baseline answer."),
        2: ("Tuned answer two.", "A much longer baseline answer that goes on."),
        3: ("Same words.", "same   WORDS."),  # identical up to case and spaces
    }
    for g, side in ((tuned, 0), (base, 1)):
        runs[side] = GenerationRun.objects.create(project=project, prompt_set=prompts, generator=g, plan=plan,
                                                  prompt_ids=ids, requests_planned=4, state="succeeded")  # fmt: skip
        for i, pk in enumerate(ids):
            Candidate.objects.create(prompt_id=pk, generator=g, run=runs[side], slot_key=slot.key, model=g.model,
                                     temperature=0.7, sample=0, max_tokens=32, text=texts[i][side])  # fmt: skip
    judge = judge_create(project=project, user=lead, name="j", base_url="http://127.0.0.1:9/v1", model="jm")
    ev = Evaluation.objects.create(project=project, job=job, prompt_set=prompts, judge=judge, plan=plan, limit=4,
                                   tuned_generator=tuned, baseline_generator=base, tuned_run=runs[0],
                                   baseline_run=runs[1], created_by=admin)  # fmt: skip
    # An earlier evaluation made prompt 2's pair the other way round (baseline as A): it is found again.
    ab = ab_project_for(ev, admin)
    p2 = Prompt.objects.get(pk=ids[2])
    digest = content_hash(p2.messages, texts[2][1], texts[2][0])
    Pair.objects.create(project=ab, prompt=p2.messages, response_a=texts[2][1], response_b=texts[2][0],
                        content_hash=digest, shuffle_key=1, open_slots=0)  # fmt: skip
    Evaluation.objects.filter(pk=ev.pk).update(ab_project=ab)
    return ev


def test_verdicts_become_a_report_in_tuned_terms(evaluation, admin, annotator, project):
    evaluation_advance(evaluation.pk)  # both runs finished: pairs, then a judge run (queued, no worker here)
    evaluation.refresh_from_db()
    assert evaluation.state == "judging" and len(evaluation.pair_ids) == 3 and len(evaluation.identical) == 1
    reversed_pair = [link for link in evaluation.pair_ids if not link[2]]
    assert len(reversed_pair) == 1  # prompt 2's pair has the baseline as A
    run = evaluation.judge_run
    by_prompt = {prompt: (pair, tuned_is_a) for prompt, pair, tuned_is_a in evaluation.pair_ids}
    ids = evaluation.tuned_run.prompt_ids
    # prompt 0: tuned wins both orders; prompt 1: the judge picks whatever it sees first (a flip: a tie);
    # prompt 2: the baseline (the pair's A) wins both orders.
    plan = {ids[0]: ("A", "A", "first", "second"), ids[1]: ("A", "B", "first", "first"),
            ids[2]: ("A", "A", "first", "second")}  # fmt: skip
    for prompt_id, (ab_w, ba_w, ab_slot, ba_slot) in plan.items():
        pair_id, _ = by_prompt[prompt_id]
        for order, winner, slot in (("ab", ab_w, ab_slot), ("ba", ba_w, ba_slot)):
            Verdict.objects.create(pair_id=pair_id, judge=run.judge, prompt_version=run.prompt_version, run=run,
                                   order=order, status="ok", winner=winner, winner_slot=slot)  # fmt: skip
    JudgeRun.objects.filter(pk=run.pk).update(state="succeeded")
    evaluation_advance(evaluation.pk)
    evaluation.refresh_from_db()
    r = evaluation.report
    assert evaluation.state == "succeeded"
    assert r["n"] == 4 and (r["wins"], r["ties"], r["losses"]) == (1, 2, 1)
    assert r["win_rate"] == pytest.approx((1 + 0.5 + 0 + 0.5) / 4)
    assert r["audit"]["position_consistency"] == pytest.approx(2 / 3) and r["audit"]["pairs_both_orders"] == 3
    assert r["audit"]["status"] == "unaudited"  # consistent enough, but no labelled pairs judged
    winners = [row["winner"] for row in r["rows"]]
    assert winners == ["tuned", "tie", "baseline", "tie"] and r["rows"][3]["identical"]
    assert r["rows"][2]["tuned_first"] == "baseline" and r["rows"][2]["baseline_first"] == "baseline"
    assert r["rows"][1]["tuned_first"] == "tuned" and r["rows"][1]["baseline_first"] == "baseline"  # a flip
    groups = {g["group"]: g for g in r["by_group"]["groups"]}
    assert r["by_group"]["key"] == "task_type" and groups["maths"]["win_rate"] == 0.75 and groups["writing"]["n"] == 2
    # the A/B pairs stay out of the project's own pool
    assert not Pair.objects.filter(project=project, pk__in=[p for _, p, _ in evaluation.pair_ids]).exists()

    client = login(admin)
    page = client.get(f"/training/evaluations/{evaluation.public_id}/").content.decode()
    assert page.count('<tr class="winner-') == 4 and HOSTILE not in page and "&lt;script&gt;" in page
    assert "Win rate against base-gen" in page
    job_page = client.get(f"/training/jobs/{evaluation.job.public_id}/").content.decode()
    assert 'id="win-rate"' in job_page and 'id="evaluation-form"' in job_page
    api = client.get(f"/api/v1/training/evaluations/{evaluation.public_id}/").json()
    assert api["report"]["win_rate"] == r["win_rate"] and api["state"] == "succeeded"
    assert login(annotator).get(f"/training/evaluations/{evaluation.public_id}/").status_code == 404

    # Deleting the evaluation project keeps the report; deleting the project then takes the evaluation with it.
    from annotation.services.project_delete import project_delete

    project_delete(project=evaluation.ab_project)
    evaluation.refresh_from_db()
    assert evaluation.ab_project is None and evaluation.report["n"] == 4 and not evaluation.pair_ids
    project_delete(project=project)
    assert not Evaluation.objects.exists()
