import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest

from annotation.quality.bias import bias_report, bias_report_from_codes


def test_left_pick_rate_and_binomial_test():
    # "a" always picks the left side, whichever response it is; "b" picks A, shown left half of the time
    rows = [("a", "A" if left_is_a else "B", left_is_a, 10, 20, 5000) for left_is_a in [True, False] * 10]
    rows += [("b", "A", left_is_a, 10, 20, 6000) for left_is_a in [True, False] * 10]
    report = bias_report(rows)["annotators"]
    assert report["a"]["left_pick_rate"] == 1.0
    assert report["a"]["left_pick_p_value"] == pytest.approx(binomtest(20, 20, 0.5).pvalue)
    assert report["b"]["left_pick_rate"] == 0.5 and report["b"]["left_pick_p_value"] == pytest.approx(1.0)


def test_longer_pick_rate_skips_equal_lengths_and_non_decisive_labels():
    rows = [
        ("a", "B", True, 10, 50, 4000),  # picked the longer
        ("a", "A", True, 10, 50, 4000),  # picked the shorter
        ("a", "A", True, 30, 30, 4000),  # same length: not counted
        ("a", "tie", True, 10, 50, 4000),  # not decisive: not counted
        ("imported:x", "A", None, 80, 10, None),  # imported: no side, no time, counts for length
    ]
    report = bias_report(rows)
    assert report["annotators"]["a"]["longer_pick_rate"] == 0.5
    assert report["annotators"]["a"]["decisive_labels"] == 3
    assert report["annotators"]["imported:x"]["left_pick_rate"] is None
    assert report["project"]["longer_pick_rate"] == pytest.approx(2 / 3)


def test_implausibly_fast_annotators_are_flagged():
    rows = [("slow", "A", True, 1, 2, 40_000)] * 5 + [("quick", "A", True, 1, 2, 2_000)] * 5
    rows += [("brisk", "A", True, 1, 2, 8_000)] * 5
    report = bias_report(rows)["annotators"]
    assert report["quick"]["implausibly_fast"] and not report["slow"]["implausibly_fast"]
    assert not report["brisk"]["implausibly_fast"]
    assert report["slow"]["median_seconds"] == 40.0


def test_no_labels():
    assert bias_report([]) == {"annotators": {}, "project": {"longer_pick_rate": None, "median_seconds": None}}


def reference_report(rows):
    """The audit written the slow, obvious way (one pass over the labels per annotator), to check the counting."""
    out = {}
    for name in sorted({r[0] for r in rows}):
        mine = [r for r in rows if r[0] == name]
        decisive = [r for r in mine if r[1] in ("A", "B")]
        sided = [(r[1] == "A") == r[2] for r in decisive if r[2] is not None]
        longer = [(r[1] == "A") == (r[3] > r[4]) for r in decisive if r[3] != r[4]]
        times = [r[5] / 1000 for r in mine if r[5] is not None]
        out[name] = {
            "labels": len(mine),
            "decisive_labels": len(decisive),
            "left_pick_rate": sum(sided) / len(sided) if sided else None,
            "left_pick_p_value": binomtest(sum(sided), len(sided), 0.5).pvalue if sided else None,
            "longer_pick_rate": sum(longer) / len(longer) if longer else None,
            "median_seconds": float(np.median(times)) if times else None,
            "p10_seconds": float(np.percentile(times, 10)) if times else None,
        }
    return out


label_rows = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c", "imported:x"]),
        st.sampled_from(["A", "B", "tie", "both_bad"]),
        st.one_of(st.none(), st.booleans()),
        st.integers(1, 5),
        st.integers(1, 5),
        st.one_of(st.none(), st.integers(0, 60_000)),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(rows=label_rows)
def test_counts_per_annotator_equal_the_obvious_computation(rows):
    report = bias_report(rows)
    expected = reference_report(rows)
    assert list(report["annotators"]) == list(expected)
    for name, figures in expected.items():
        got = report["annotators"][name]
        for key, value in figures.items():
            assert got[key] == (pytest.approx(value, abs=1e-12) if isinstance(value, float) else value), key


def test_arrays_and_rows_give_the_same_report():
    rng = np.random.default_rng(4)
    n = 5000
    rater = rng.integers(0, 7, n)
    choice = rng.integers(-1, 4, n).astype(np.int8)  # -1: not a choice (never decisive)
    left = rng.integers(-1, 2, n).astype(np.int8)
    len_a, len_b = rng.integers(1, 4, n), rng.integers(1, 4, n)
    ms = np.where(rng.random(n) < 0.1, np.nan, rng.integers(500, 90_000, n))
    names = [f"u{i}" for i in range(7)]
    from_arrays = bias_report_from_codes(raters=names, rater=rater, choice=choice, left_is_a=left,
                                         longer=np.sign(len_a - len_b), time_ms=ms)  # fmt: skip
    rows = [(names[r], ("A", "B", "tie", "both_bad", "?")[c], None if s < 0 else bool(s), int(x), int(y),
             None if np.isnan(t) else int(t)) for r, c, s, x, y, t in zip(rater, choice, left, len_a, len_b, ms,
                                                                          strict=True)]  # fmt: skip
    assert from_arrays == bias_report(rows)
