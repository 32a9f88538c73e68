import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annotation.models import Label
from annotation.quality.agreement import rating_matrix
from annotation.quality.consensus import dawid_skene, item_consensus
from annotation.selectors import pair_consensus
from tests.factories import make_pairs


def test_majority_margin_and_agreement():
    m = rating_matrix(
        [1, 1, 1, 2, 2, 3, 3, 3, 3],
        ["a", "b", "c", "a", "b", "a", "b", "c", "d"],
        ["A", "A", "B", "tie", "both_bad", "A", "B", "A", "B"],
    )
    by_pair = {c["pair_id"]: c for c in item_consensus(m)}
    assert by_pair[1]["majority"] == "A" and by_pair[1]["vote_margin"] == pytest.approx(1 / 3)
    assert by_pair[1]["agreement"] == pytest.approx(2 / 3)
    assert by_pair[2]["majority"] == "no_preference" and by_pair[2]["p_a_better"] == pytest.approx(0.5, abs=0.05)
    assert by_pair[3]["majority"] == "none" and by_pair[3]["vote_margin"] == 0


def test_no_labels_at_all_is_no_consensus_not_an_error():
    # a project nobody labelled (a campaign's pairs, judged only): the evaluation's judge audit reads this
    assert item_consensus(rating_matrix([], [], [])) == []


def test_dawid_skene_discounts_an_unreliable_annotator():
    rng = np.random.default_rng(7)
    truth = rng.integers(0, 2, 400)
    items, raters, choices = [], [], []
    for i, t in enumerate(truth):
        for r in range(4):
            careful = r < 2
            given_ = t if (rng.random() < (0.95 if careful else 0.5)) else 1 - t  # r2, r3 answer at random
            items.append(i)
            raters.append(f"r{r}")
            choices.append("AB"[given_])
    consensus = item_consensus(rating_matrix(items, raters, choices))
    ds_correct = np.mean([(c["p_a_better"] > 0.5) == (t == 0) for c, t in zip(consensus, truth, strict=True)])
    majority_correct = np.mean([c["majority"] == "AB"[t] for c, t in zip(consensus, truth, strict=True)])
    assert ds_correct > 0.95 and ds_correct > majority_correct


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 20), st.integers(0, 4), st.sampled_from(["A", "B", "tie", "both_bad"])),
        min_size=1,
        max_size=80,
    )
)
def test_posteriors_are_probabilities(labels):
    m = rating_matrix([x[0] for x in labels], [f"r{x[1]}" for x in labels], [x[2] for x in labels])
    posterior = dawid_skene(m)
    assert np.allclose(posterior.sum(axis=1), 1.0) and (posterior >= 0).all()
    for c in item_consensus(m):
        assert 0.0 <= c["p_a_better"] <= 1.0 and -1.0 <= c["vote_margin"] <= 1.0
        assert c["labels"] == sum(c["votes"].values())


@pytest.mark.django_db
def test_pair_consensus_selector_reads_human_and_imported_labels(project):
    pairs = make_pairs(project, 2)
    for name, choice in (("x", "A"), ("y", "A"), ("z", "B")):
        Label.objects.create(project=project, pair=pairs[0], source="external", external_annotator=name, choice=choice)
    [c] = pair_consensus(project)
    assert c["pair_id"] == pairs[0].pk and c["votes"] == {"A": 2, "B": 1, "no_preference": 0}
