"""Curation steps on constructed cases and as properties (hypothesis); the columnar loader against the per-pair
dicts of pair_consensus and pair_judge_aggregate."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from judging.prompts import render_conversation
from training.curation.recipe import RecipeConfig
from training.curation.steps import (
    GOLD_CHOICES,
    LEVEL,
    NO_GOLD,
    ROW_SOURCES,
    STEPS,
    Candidates,
    chosen_longer_share,
    curate,
)
from training.export.split import split_by_prompt

MAJORITY = {"A": 0, "B": 1, "no_preference": 2, "none": LEVEL}


def human(majority, margin=1.0, agreement=1.0, labels=3, tie=0, both_bad=0):
    return {"majority": majority, "vote_margin": margin, "agreement": agreement, "labels": labels, "tie": tie,
            "both_bad": both_bad}  # fmt: skip


def judge(winner, margin=5.0, consistent=1, judges=1):
    return {"winner": winner, "mean_margin": margin, "consistent_judges": consistent, "judges": judges}


def cand(i, prompt=None, a=None, b=None, gold="", human=None, judge=None):
    messages = [{"role": "user", "content": prompt or f"Question number {i} about topic {i * 7}?"}]
    return {"pair_id": i, "prompt": messages,
            "response_a": a or f"A detailed answer {i} with facts {i * 3}.", "response_b": b or f"Short reply {i}.",
            "gold": gold, "human": human, "judge": judge}  # fmt: skip


def _text(cand: dict, field: str):
    return render_conversation(cand["prompt"]) if field == "prompt_text" else cand[field]


def memory_texts(by_id: dict[int, dict], batch: int = 3):
    """A text reader over dicts; small batches, so batch boundaries are crossed."""

    def read(pair_ids, fields):
        assert (np.diff(pair_ids) > 0).all()
        for start in range(0, len(pair_ids), batch):
            chunk = pair_ids[start : start + batch]
            yield chunk, {f: [_text(by_id[int(i)], f) for i in chunk] for f in fields}

    return read


def columns(cands: list[dict]) -> Candidates:
    cands = sorted(cands, key=lambda c: c["pair_id"])
    h = [c["human"] or human("none", 0.0, 0.0, 0) for c in cands]
    j = [c["judge"] or judge("tie", 0.0, 0, 0) for c in cands]

    def arr(values, dtype):
        return np.array(list(values), dtype=dtype)

    return Candidates(
        pair_id=arr((c["pair_id"] for c in cands), np.int64),
        gold=arr((GOLD_CHOICES.index(c["gold"]) if c["gold"] else NO_GOLD for c in cands), np.int8),
        human_labels=arr((x["labels"] for x in h), np.int32),
        human_majority=arr((MAJORITY[x["majority"]] for x in h), np.int8),
        human_vote_margin=arr((x["vote_margin"] for x in h), np.float64),
        human_agreement=arr((x["agreement"] for x in h), np.float64),
        human_tie=arr((x["tie"] for x in h), np.int32),
        human_both_bad=arr((x["both_bad"] for x in h), np.int32),
        judges=arr((x["judges"] for x in j), np.int32),
        judge_winner=arr(({"A": 0, "B": 1, "tie": 2}[x["winner"]] for x in j), np.int8),
        judge_mean_margin=arr((x["mean_margin"] for x in j), np.float64),
        judge_consistent=arr((x["consistent_judges"] for x in j), np.int32),
        chars_a=arr((len(c["response_a"]) for c in cands), np.int64),
        chars_b=arr((len(c["response_b"]) for c in cands), np.int64),
        texts=memory_texts({c["pair_id"]: c for c in cands}),
    )


def run(cands, *, kto=False, **cfg):
    rows, funnel = curate(columns(cands), RecipeConfig(**cfg), kto=kto)
    return rows, {s["step"]: s for s in funnel.steps}


def chosen(rows, cands):
    by_id = {c["pair_id"]: c for c in cands}
    pairs = zip(rows.pair_id.tolist(), rows.swap.tolist(), strict=True)
    return [by_id[i]["response_b" if swap else "response_a"] for i, swap in pairs]


def ids(rows):
    return rows.pair_id.tolist()


def test_human_preference_orients_chosen_and_rejected():
    cands = [cand(1, human=human("A")), cand(2, human=human("B", margin=-1.0))]
    rows, _ = run(cands)
    oriented = [(i, c.startswith("A detailed")) for i, c in zip(ids(rows), chosen(rows, cands), strict=True)]
    assert oriented == [(1, True), (2, False)]


def test_margin_and_agreement_filters_drop_weak_pairs_with_reasons():
    cands = [cand(1, human=human("A", margin=1 / 3, agreement=2 / 3)), cand(2, human=human("A", margin=1.0))]
    rows, steps = run(cands, min_vote_margin=0.5)
    assert ids(rows) == [2]
    assert steps["vote_margin"]["reasons"] == {"vote margin below the minimum": 1}
    rows, steps = run(cands, min_human_agreement=0.9)
    assert ids(rows) == [2] and steps["human_agreement"]["removed"] == 1


def test_judge_source_margin_and_flips():
    cands = [cand(1, judge=judge("A", 6.0)), cand(2, judge=judge("B", -1.0)), cand(3, judge=judge("A", 4, 0, 1))]
    rows, steps = run(cands, source="judge", min_judge_margin=2.0)
    assert ids(rows) == [1]
    assert steps["judge_margin"]["removed"] == 1 and steps["judge_inconsistent"]["removed"] == 1


def test_human_else_judge_and_agree():
    cands = [cand(1, human=human("A")), cand(2, judge=judge("B", -5)), cand(3, human=human("A"), judge=judge("B", -5))]
    rows, _ = run(cands, source="human_else_judge")
    sources = [(i, ROW_SOURCES[s]) for i, s in zip(ids(rows), rows.source, strict=True)]
    assert sources == [(1, "human"), (2, "judge"), (3, "human")]
    rows, steps = run(cands, source="agree")
    assert len(rows) == 0 and steps["preference"]["removed"] == 3


def test_ties_dropped_or_both_bad_kept_for_kto():
    cands = [cand(1, human=human("no_preference", 0, tie=2, both_bad=1)),
             cand(2, human=human("no_preference", 0, tie=0, both_bad=3))]  # fmt: skip
    rows, steps = run(cands)
    assert len(rows) == 0 and steps["ties"]["removed"] == 2
    rows, _ = run(cands, kto=True, both_bad_as_undesirable=True)
    assert list(zip(ids(rows), rows.both_bad.tolist(), strict=True)) == [(2, True)]


def test_gold_pairs_use_their_expected_answer_only_when_included():
    cands = [cand(1, gold="B", human=human("A"))]
    assert len(run(cands)[0]) == 0
    rows, _ = run(cands, include_gold=True)
    assert ROW_SOURCES[rows.source[0]] == "gold" and chosen(rows, cands)[0].startswith("Short")


def test_near_identical_responses_are_dropped():
    same = "The capital of France is Paris, a city on the Seine."
    cands = [cand(1, a=same, b=same + " ", human=human("A")), cand(2, human=human("A"))]
    rows, steps = run(cands)
    assert ids(rows) == [2] and steps["same_responses"]["removed"] == 1
    rows, steps = run(cands, near_duplicates=False)  # the text steps off: nothing compared, nothing removed
    assert ids(rows) == [1, 2] and steps["same_responses"]["removed"] == 0


def test_duplicate_pairs_across_near_same_prompts_keep_the_strongest():
    a, b = "Boil water, add pasta, cook ten minutes, drain.", "Just microwave it I guess."
    cands = [cand(1, prompt="How do I cook pasta?", a=a, b=b, human=human("A", margin=1 / 3)),
             cand(2, prompt="How do I cook  PASTA?", a=a, b=b, human=human("A", margin=1.0)),
             cand(3, prompt="How do I cook pasta?", a="Different, much longer answer about sauces.", b=b,
                  human=human("A"))]  # fmt: skip
    rows, steps = run(cands)
    assert ids(rows) == [2, 3] and steps["duplicate_pairs"]["removed"] == 1
    assert len(set(rows.group.tolist())) == 1  # same prompt group
    rows, steps = run(cands, max_pairs_per_prompt=1)
    assert ids(rows) == [2] and steps["per_prompt_cap"]["removed"] == 1
    rows, steps = run(cands, near_duplicates=False)
    assert ids(rows) == [1, 2, 3] and len(set(rows.group.tolist())) == 1  # exact prompt groups stay


def test_duplicates_compare_chosen_with_chosen_whichever_side_it_is_on():
    a, b = "Boil water, add pasta, cook ten minutes, drain.", "Just microwave it I guess."
    cands = [
        cand(1, prompt="Pasta?", a=a, b=b, human=human("A")),
        cand(2, prompt="Pasta?", a=b, b=a, human=human("B", margin=-1.0)),  # the same pair, sides swapped
        cand(3, prompt="Pasta?", a=b, b=a, human=human("A")),
    ]  # the opposite preference: not a duplicate
    rows, steps = run(cands)  # fmt: skip
    assert ids(rows) == [1, 3] and steps["duplicate_pairs"]["removed"] == 1


def test_length_balance_equalises_chosen_longer_and_shorter():
    cands = [cand(i, human=human("A")) for i in range(1, 8)] + [cand(8, human=human("B", -1))]
    rows, _ = run(cands)
    assert chosen_longer_share(rows) == pytest.approx(7 / 8)
    rows, steps = run(cands, balance_length=True)
    assert chosen_longer_share(rows) == 0.5 and steps["length_balance"]["removed"] == 6


@st.composite
def candidate_sets(draw):
    n = draw(st.integers(0, 25))
    out = []
    for i in range(1, n + 1):
        prompt = draw(st.sampled_from(["Explain tides.", "Explain  tides.", "Write a haiku.", f"Question {i}?"]))
        h = draw(st.one_of(st.none(), st.builds(
            human, st.sampled_from(["A", "B", "no_preference", "none"]), st.floats(-1, 1), st.floats(0.3, 1),
            st.integers(1, 5), st.integers(0, 3), st.integers(0, 3))))  # fmt: skip
        j = draw(st.one_of(st.none(), st.builds(judge, st.sampled_from(["A", "B", "tie"]), st.floats(-9, 9),
                                                st.integers(0, 2), st.just(2))))  # fmt: skip
        out.append(cand(i, prompt=prompt, a=draw(st.sampled_from(["yes", "no", "a long answer"])) + str(i % 3),
                        b=draw(st.sampled_from(["yes", "maybe", "short"])), human=h, judge=j,
                        gold=draw(st.sampled_from(["", "", "A"]))))  # fmt: skip
    return out


configs = st.builds(
    RecipeConfig, source=st.sampled_from(["human", "judge", "human_else_judge", "agree"]), include_gold=st.booleans(),
    min_human_agreement=st.floats(0, 1), min_vote_margin=st.floats(0, 1), min_judge_margin=st.floats(0, 9),
    drop_judge_inconsistent=st.booleans(), max_pairs_per_prompt=st.one_of(st.none(), st.integers(1, 3)),
    balance_length=st.booleans(), seed=st.integers(0, 5), near_duplicates=st.booleans(),
)  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(candidate_sets(), configs)
def test_each_step_only_removes_and_the_funnel_adds_up(cands, config):
    rows, funnel = curate(columns(cands), config)
    steps = funnel.steps
    assert [s["step"] for s in steps] == list(STEPS)
    assert steps[0]["rows_in"] == len(cands) and steps[-1]["rows_out"] == len(rows)
    for before, after in zip(steps, steps[1:], strict=False):
        assert after["rows_in"] == before["rows_out"]
    for s in steps:
        assert s["rows_out"] == s["rows_in"] - s["removed"] == s["rows_in"] - sum(s["reasons"].values())
    assert set(ids(rows)) <= {c["pair_id"] for c in cands} and (np.diff(rows.pair_id) > 0).all()
    # the same recipe on the same data gives the same rows
    again, _ = curate(columns(list(reversed(cands))), config)
    for name in ("pair_id", "swap", "margin", "source", "both_bad", "group"):
        assert getattr(again, name).tolist() == getattr(rows, name).tolist()


@settings(max_examples=60, deadline=None)
@given(candidate_sets(), st.floats(0, 0.9), st.integers(0, 100))
def test_no_prompt_group_in_both_splits(cands, fraction, seed):
    rows, _ = curate(columns(cands), RecipeConfig(source="human_else_judge"))
    is_test = split_by_prompt(rows, test_fraction=fraction, seed=seed)
    assert set(rows.group[is_test].tolist()).isdisjoint(rows.group[~is_test].tolist())
    by_id = {c["pair_id"]: c for c in cands}
    normalised = lambda ids: {" ".join(by_id[i]["prompt"][0]["content"].lower().split()) for i in ids}  # noqa: E731
    assert normalised(rows.pair_id[~is_test].tolist()).isdisjoint(normalised(rows.pair_id[is_test].tolist()))
    if len(rows):  # the test split takes whole groups until it reaches the fraction, and no more groups than that
        assert is_test.sum() >= round(fraction * len(rows)) or not (~is_test).any()


def test_unknown_or_invalid_settings_are_refused():
    with pytest.raises(ValueError, match="unknown recipe settings: colour"):
        RecipeConfig.from_dict({"colour": "red"})
    with pytest.raises(ValueError, match="source"):
        RecipeConfig.from_dict({"source": "vibes"})


def test_prompts_that_differ_in_a_short_word_are_different_groups():
    from training.curation.similarity import prompt_groups

    keys = prompt_groups(["Question 1?", "Question 2?", "question  1?", "What is x?", "What is y?"], 0.95)
    assert keys[0] == keys[2] and len({keys[0], keys[1], keys[3], keys[4]}) == 4


def _answer(project, pair, user, choice, kind="regular"):
    from django.utils import timezone

    from annotation.models import Assignment, Label

    now = timezone.now()
    assignment = Assignment.objects.create(project=project, pair=pair, annotator=user, kind=kind, state="done",
                                           left_is_a=True, served_at=now, expires_at=now, finished_at=now)  # fmt: skip
    Label.objects.create(project=project, pair=pair, assignment=assignment, annotator=user, choice=choice,
                         left_is_a=True)  # fmt: skip


@pytest.mark.django_db
def test_the_columns_match_pair_consensus_and_pair_judge_aggregate(project, annotator, monkeypatch):
    """The set-based loader against the per-pair dicts curation used to read (and other pages still do)."""
    monkeypatch.setattr("training.curation.candidates.ARRAY_CHUNK", 7)  # several id ranges
    import random

    from django.db.models import Count
    from django.utils import timezone

    from annotation.models import Label, Membership, Pair
    from annotation.selectors import pair_consensus
    from judging.models import JudgeConfig, PairJudgement, PromptVersion
    from judging.selectors import pair_judge_aggregate
    from tests.factories import UserFactory, make_pairs, member
    from training.curation.candidates import curation_candidates

    rng = random.Random(3)
    pairs = make_pairs(project, 30)
    Pair.objects.filter(pk=pairs[0].pk).update(gold="B")  # a calibration pair: no consensus
    Pair.objects.filter(pk=pairs[1].pk).update(response_a="é" * 40)  # lengths in characters, not bytes
    paused = UserFactory()
    member(project, paused)
    Membership.objects.filter(project=project, user=paused).update(paused_at=timezone.now())
    choices = ["A", "B", "tie", "both_bad"]
    for pair in pairs[:-3]:  # the last three pairs have no labels at all
        for name in rng.sample(["x", "y", "z"], rng.randint(0, 3)):
            Label.objects.create(project=project, pair=pair, source="external", external_annotator=name,
                                 choice=rng.choice(choices))  # fmt: skip
        if rng.random() < 0.6:
            _answer(project, pair, annotator, rng.choice(choices))
        if rng.random() < 0.5:
            _answer(project, pair, paused, rng.choice(choices))
        if rng.random() < 0.3:  # a mirrored repeat never counts
            _answer(project, pair, annotator, rng.choice(choices), kind="repeat")
    judges = [JudgeConfig.objects.create(project=project, name=f"j{k}", base_url="http://127.0.0.1:1/v1", model="m")
              for k in range(3)]  # fmt: skip
    versions = {}
    for judge in judges:
        for v in (1, 2):
            versions[judge.pk, v] = PromptVersion.objects.create(judge=judge, version=v, system="s", template="t")
    for pair in pairs[2:]:
        for judge in judges:
            for v in (1, 2) if judge != judges[2] else (1,):  # the third judge only has an old version
                if rng.random() < 0.7:
                    PairJudgement.objects.create(pair=pair, judge=judge, prompt_version=versions[judge.pk, v],
                                                 winner=rng.choice(["A", "B", "tie"]), consistent=rng.random() < 0.7,
                                                 margin=rng.choice([-6.0, -1.5, 0.0, 2.5, 7.0]), orders=2)  # fmt: skip

    columns = curation_candidates(project)
    assert columns.pair_id.tolist() == sorted(p.pk for p in pairs)
    human = {c["pair_id"]: c for c in pair_consensus(project)}

    def votes(choice):  # as curation_candidates counted them before it was set-based
        return dict(
            Label.objects.filter(project=project, choice=choice)
            .exclude(assignment__kind__in=["repeat", "practice", "gold"])
            .values("pair_id").annotate(n=Count("pk")).values_list("pair_id", "n")
        )  # fmt: skip

    tie, both_bad = votes("tie"), votes("both_bad")
    judged = pair_judge_aggregate(project)
    assert human and judged
    for i, pair_id in enumerate(columns.pair_id.tolist()):
        h = human.get(pair_id)
        if h is None:
            assert columns.human_labels[i] == 0
        else:
            assert columns.human_labels[i] == h["labels"] and columns.human_majority[i] == MAJORITY[h["majority"]]
            assert columns.human_vote_margin[i] == h["vote_margin"] and columns.human_agreement[i] == h["agreement"]
            assert (columns.human_tie[i], columns.human_both_bad[i]) == (tie.get(pair_id, 0), both_bad.get(pair_id, 0))
        j = judged.get(pair_id)
        if j is None:
            assert columns.judges[i] == 0
        else:
            assert columns.judges[i] == j["judges"] and columns.judge_consistent[i] == j["consistent_judges"]
            assert columns.judge_winner[i] == {"A": 0, "B": 1, "tie": 2}[j["winner"]]
            assert columns.judge_mean_margin[i] == pytest.approx(j["mean_margin"], abs=1e-12)
    pair = Pair.objects.get(pk=pairs[1].pk)
    assert columns.chars_a[1] == 40 == len(pair.response_a) and columns.chars_b[1] == len(pair.response_b)
    assert columns.gold.tolist() == [GOLD_CHOICES.index("B")] + [NO_GOLD] * 29
    # the texts come back in batches, in pair id order, whichever way a batch is read (id range or id list)
    from training.curation.texts import pair_text_reader

    wanted = columns.pair_id[[0, 1, 2, 5, 6, 7, 8, 29]]
    for batch in (2, 3, 100):
        read = list(pair_text_reader(project, columns.pair_id, batch=batch)(wanted, ("prompt", "response_b")))
        assert np.concatenate([ids for ids, _ in read]).tolist() == wanted.tolist()
        texts = [t for _, b in read for t in b["response_b"]]
        assert texts == [Pair.objects.get(pk=p).response_b for p in wanted.tolist()]
        assert read[0][1]["prompt"][0] == Pair.objects.get(pk=wanted[0]).prompt

    # the datasheet's agreement figures, read a few pairs at a time, are project_agreement's, to the last bit
    from annotation.quality.agreement import LABEL_SPACES
    from annotation.selectors import project_agreement, project_agreement_figures

    checker = UserFactory()
    member(project, checker)
    _answer(project, pairs[0], checker, "B", kind="gold")  # calibration answers never count
    for space in LABEL_SPACES:
        whole = project_agreement(project, space=space, n_boot=50)
        for part_pairs in (1, 4, 1000):
            parts = project_agreement_figures(project, space=space, n_boot=50, part_pairs=part_pairs)
            assert parts == {k: whole[k] for k in parts}
        assert parts["labels"] > 20 and parts["fleiss_kappa"]["value"] is not None
