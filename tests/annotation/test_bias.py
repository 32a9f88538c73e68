import pytest
from scipy.stats import binomtest

from annotation.quality.bias import bias_report


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
