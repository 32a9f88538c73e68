"""Pair building's rules as properties (hypothesis) over random candidates, and the preview against what is
written: the counts the lead sees are the pairs the build writes."""

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from annotation.models import Pair
from generation.models import Candidate, PairOrigin, Rating
from generation.pairing import STRATEGIES, Item, Options, kto_weights, plan_pairs
from generation.services import kto_rows, pairs_build, pairs_preview
from judging.services import judge_create
from tests.generation.helpers import endpoint_generator, new_run, prompt_set

items_st = st.lists(
    st.builds(
        lambda i, prompt, gen, text, score, flagged: Item(i, prompt, gen, text, score, flagged),
        st.integers(0, 10**6),
        st.integers(0, 3),
        st.integers(0, 2),
        st.sampled_from(["a", "A ", "b", "c", "d", "e"]),
        st.one_of(st.none(), st.integers(1, 10).map(float)),
        st.booleans(),
    ),  # fmt: skip
    max_size=30,
    unique_by=lambda item: item.id,
)
options_st = st.builds(
    Options, strategy=st.sampled_from(STRATEGIES), per_prompt=st.integers(1, 20), min_margin=st.sampled_from([0, 1, 3]),
    different_generators=st.booleans(), include_flagged=st.booleans(), seed=st.integers(0, 3),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(items_st, options_st)
@example([Item(1, 0, 0, "a", 5.0), Item(2, 0, 0, "b", 5.0)], Options(strategy="all", min_margin=0))  # a tie
def test_pair_rules_hold_for_any_candidates(items, options):
    by_id = {i.id: i for i in items}
    preview = plan_pairs(items, options)
    per_prompt: dict[int, int] = {}
    seen = set()
    for p in preview.pairs:
        a, b = by_id[p.a], by_id[p.b]
        assert a.prompt_id == b.prompt_id == p.prompt_id and a.id != b.id
        assert " ".join(a.text.lower().split()) != " ".join(b.text.lower().split())  # never identical texts
        if a.score is not None and b.score is not None:
            assert a.score > b.score and p.margin == a.score - b.score >= options.min_margin  # never a tie
        else:
            assert options.strategy == "all" and p.margin is None
        if options.different_generators:
            assert a.generator_id != b.generator_id
        if not options.include_flagged:
            assert not a.flagged and not b.flagged
        assert frozenset((a.id, b.id)) not in seen
        seen.add(frozenset((a.id, b.id)))
        per_prompt[p.prompt_id] = per_prompt.get(p.prompt_id, 0) + 1
    assert all(n <= options.per_prompt for n in per_prompt.values())
    if options.strategy != "all":
        for p in preview.pairs:  # A is the prompt's best usable candidate
            usable = [i for i in items if i.prompt_id == p.prompt_id and i.score is not None
                      and (options.include_flagged or not i.flagged)]  # fmt: skip
            assert by_id[p.a].score == max(i.score for i in usable)
    assert plan_pairs(items, options) == preview  # deterministic: the preview is what gets built


@given(st.integers(1, 500), st.integers(1, 500))
def test_kto_weights_keep_the_ratio_between_1_and_4_3(desirable, undesirable):
    wd, wu = kto_weights(desirable, undesirable)
    assert 1 <= (desirable * wd) / (undesirable * wu) <= 4 / 3 + 1e-9
    assert wd == 1 or wu == 1


@pytest.mark.django_db
def test_preview_counts_equal_what_is_built_and_building_twice_adds_nothing(project, lead, tmp_path):
    from tests.judging.fake_openai import FakeOpenAI, ok

    with FakeOpenAI() as server:
        server.default = lambda body: ok(f"answer {len(server.requests)}")
        prompts = prompt_set(project, lead, tmp_path, n=5)
        generator = endpoint_generator(project, lead, server.base_url)
        run = new_run(project, prompts, generator, lead)  # 4 candidates a prompt
        from generation.engine import sample_chunk

        sample_chunk(run, run.prompt_ids)
    rater = judge_create(project=project, user=lead, name="r", base_url="http://127.0.0.1:9/v1", model="m")
    by_slot = {(0.5, 0): 9, (0.5, 1): 9, (1.0, 0): 5, (1.0, 1): 2}
    for candidate in Candidate.objects.all():
        tied = candidate.prompt_id == run.prompt_ids[0]  # the first prompt's candidates all score 6: no pair
        score = 6 if tied else by_slot[(candidate.temperature, candidate.sample)]
        Rating.objects.create(candidate=candidate, judge=rater, status="ok", score=score)
    options = Options(strategy="best_worst", per_prompt=2, min_margin=1)
    preview = pairs_preview(prompt_set=prompts, options=options)
    assert len(preview.pairs) == 8 and preview.prompts_without_pair == 1 and preview.already_in_project == 0
    result = pairs_build(prompt_set=prompts, options=options, user=lead)
    assert result.created == len(preview.pairs) == Pair.objects.filter(project=project).count()
    pair = Pair.objects.filter(origin__candidate_b__ratings__score=2).first()
    origin = pair.origin
    assert pair.response_a == origin.candidate_a.text and pair.source_preference == "A" and origin.margin == 7
    assert pair.model_a == "m" and pair.open_slots == project.overlap_k and pair.metadata == {"task": "math"}
    again = pairs_build(prompt_set=prompts, options=options, user=lead)  # a double click, a second tab
    assert again.created == 0 and again.already_in_project == 8 and PairOrigin.objects.count() == 8
    assert pairs_preview(prompt_set=prompts, options=options).already_in_project == 8
    kto = kto_rows(prompt_set=prompts, good_at=7, bad_at=4)
    assert (kto.desirable, kto.undesirable) == (8, 4)  # the tied 6s are left out
    assert (kto.desirable_weight, kto.undesirable_weight) == (1.0, 1.5)
    assert kto.rows[0]["completion"][0]["role"] == "assistant" and isinstance(kto.rows[0]["label"], bool)
