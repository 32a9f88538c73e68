"""Curation steps on constructed cases and as properties (hypothesis)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training.curation import STEPS, Candidate, RecipeConfig, chosen_longer_share, curate
from training.exports import split_by_prompt


def human(majority, margin=1.0, agreement=1.0, labels=3, tie=0, both_bad=0):
    return {"majority": majority, "vote_margin": margin, "agreement": agreement, "labels": labels, "tie": tie,
            "both_bad": both_bad}  # fmt: skip


def judge(winner, margin=5.0, consistent=1, judges=1):
    return {"winner": winner, "mean_margin": margin, "consistent_judges": consistent, "judges": judges}


def cand(i, prompt=None, a=None, b=None, **kw):
    return Candidate(i, [{"role": "user", "content": prompt or f"Question number {i} about topic {i * 7}?"}],
                     a or f"A detailed answer {i} with facts {i * 3}.", b or f"Short reply {i}.", **kw)  # fmt: skip


def run(cands, **cfg):
    rows, funnel = curate(cands, RecipeConfig(**cfg))
    return rows, {s["step"]: s for s in funnel.steps}


def test_human_preference_orients_chosen_and_rejected():
    rows, _ = run([cand(1, human=human("A")), cand(2, human=human("B", margin=-1.0))])
    assert [(r.pair_id, r.chosen.startswith("A detailed")) for r in rows] == [(1, True), (2, False)]


def test_margin_and_agreement_filters_drop_weak_pairs_with_reasons():
    cands = [cand(1, human=human("A", margin=1 / 3, agreement=2 / 3)), cand(2, human=human("A", margin=1.0))]
    rows, steps = run(cands, min_vote_margin=0.5)
    assert [r.pair_id for r in rows] == [2]
    assert steps["vote_margin"]["reasons"] == {"vote margin below the minimum": 1}
    rows, steps = run(cands, min_human_agreement=0.9)
    assert [r.pair_id for r in rows] == [2] and steps["human_agreement"]["removed"] == 1


def test_judge_source_margin_and_flips():
    cands = [cand(1, judge=judge("A", 6.0)), cand(2, judge=judge("B", -1.0)), cand(3, judge=judge("A", 4, 0, 1))]
    rows, steps = run(cands, source="judge", min_judge_margin=2.0)
    assert [r.pair_id for r in rows] == [1]
    assert steps["judge_margin"]["removed"] == 1 and steps["judge_inconsistent"]["removed"] == 1


def test_human_else_judge_and_agree():
    cands = [cand(1, human=human("A")), cand(2, judge=judge("B", -5)), cand(3, human=human("A"), judge=judge("B", -5))]
    rows, _ = run(cands, source="human_else_judge")
    assert [(r.pair_id, r.source) for r in rows] == [(1, "human"), (2, "judge"), (3, "human")]
    rows, steps = run(cands, source="agree")
    assert rows == [] and steps["preference"]["removed"] == 3


def test_ties_dropped_or_both_bad_kept_for_kto():
    cands = [cand(1, human=human("no_preference", 0, tie=2, both_bad=1)),
             cand(2, human=human("no_preference", 0, tie=0, both_bad=3))]  # fmt: skip
    rows, steps = run(cands)
    assert rows == [] and steps["ties"]["removed"] == 2
    rows, _ = curate(cands, RecipeConfig(both_bad_as_undesirable=True), kto=True)
    assert [(r.pair_id, r.both_bad) for r in rows] == [(2, True)]


def test_gold_pairs_use_their_expected_answer_only_when_included():
    cands = [cand(1, gold="B", human=human("A"))]
    assert run(cands)[0] == []
    rows, _ = run(cands, include_gold=True)
    assert rows[0].source == "gold" and rows[0].chosen.startswith("Short")


def test_near_identical_responses_are_dropped():
    same = "The capital of France is Paris, a city on the Seine."
    rows, steps = run([cand(1, a=same, b=same + " ", human=human("A")), cand(2, human=human("A"))])
    assert [r.pair_id for r in rows] == [2] and steps["same_responses"]["removed"] == 1


def test_duplicate_pairs_across_near_same_prompts_keep_the_strongest():
    a, b = "Boil water, add pasta, cook ten minutes, drain.", "Just microwave it I guess."
    cands = [cand(1, prompt="How do I cook pasta?", a=a, b=b, human=human("A", margin=1 / 3)),
             cand(2, prompt="How do I cook  PASTA?", a=a, b=b, human=human("A", margin=1.0)),
             cand(3, prompt="How do I cook pasta?", a="Different, much longer answer about sauces.", b=b,
                  human=human("A"))]  # fmt: skip
    rows, steps = run(cands)
    assert sorted(r.pair_id for r in rows) == [2, 3] and steps["duplicate_pairs"]["removed"] == 1
    assert len({r.group for r in rows}) == 1  # same prompt group
    rows, steps = run(cands, max_pairs_per_prompt=1)
    assert [r.pair_id for r in rows] == [2] and steps["per_prompt_cap"]["removed"] == 1


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
    balance_length=st.booleans(), seed=st.integers(0, 5),
)  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(candidate_sets(), configs)
def test_each_step_only_removes_and_the_funnel_adds_up(cands, config):
    rows, funnel = curate(cands, config)
    steps = funnel.steps
    assert [s["step"] for s in steps] == list(STEPS)
    assert steps[0]["rows_in"] == len(cands) and steps[-1]["rows_out"] == len(rows)
    for before, after in zip(steps, steps[1:], strict=False):
        assert after["rows_in"] == before["rows_out"]
    for s in steps:
        assert s["rows_out"] == s["rows_in"] - s["removed"] == s["rows_in"] - sum(s["reasons"].values())
    assert {r.pair_id for r in rows} <= {c.pair_id for c in cands}
    # the same recipe on the same data gives the same rows
    again, _ = curate(list(reversed(cands)), config)
    assert [(r.pair_id, r.chosen, r.rejected) for r in again] == [(r.pair_id, r.chosen, r.rejected) for r in rows]


@settings(max_examples=60, deadline=None)
@given(candidate_sets(), st.floats(0, 0.9), st.integers(0, 100))
def test_no_prompt_group_in_both_splits(cands, fraction, seed):
    rows, _ = curate(cands, RecipeConfig(source="human_else_judge"))
    train, test = split_by_prompt(rows, test_fraction=fraction, seed=seed)
    assert {r.group for r in train}.isdisjoint({r.group for r in test})
    assert sorted(r.pair_id for r in train + test) == sorted(r.pair_id for r in rows)
    normalised = lambda rs: {" ".join(r.prompt[0]["content"].lower().split()) for r in rs}  # noqa: E731
    assert normalised(train).isdisjoint(normalised(test))


def test_unknown_or_invalid_settings_are_refused():
    with pytest.raises(ValueError, match="unknown recipe settings: colour"):
        RecipeConfig.from_dict({"colour": "red"})
    with pytest.raises(ValueError, match="source"):
        RecipeConfig.from_dict({"source": "vibes"})


def test_prompts_that_differ_in_a_short_word_are_different_groups():
    from training.curation import prompt_groups

    keys = prompt_groups(["Question 1?", "Question 2?", "question  1?", "What is x?", "What is y?"], 0.95)
    assert keys[0] == keys[2] and len({keys[0], keys[1], keys[3], keys[4]}) == 4
