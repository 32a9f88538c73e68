"""The win-rate maths against reference fits: the length-controlled win rate is statsmodels' binomial GLM on the
same fractional preferences (a different library and algorithm), it removes a known length bias and leaves
unbiased data alone; the verdict line reads the interval, not the point estimate."""

import numpy as np
import pytest
import statsmodels.api as sm

from training.evaluations.stats import bootstrap_mean, lc_fit, lc_win_rate, summarise, verdict_line


def synthetic(n: int, *, strength: float, length_effect: float, seed: int):
    """Verdicts from a model of known strength and a judge with a known taste for length (AlpacaEval's GLM)."""
    rng = np.random.default_rng(seed)
    len_base = rng.integers(200, 1200, n).astype(float)
    len_tuned = len_base + rng.normal(300, 400, n)  # the tuned model mostly writes longer
    delta = len_tuned - len_base
    logit = strength + length_effect * np.tanh(delta / delta.std(ddof=1))
    wins = rng.random(n) < 1 / (1 + np.exp(-logit))
    ties = rng.random(n) < 0.1
    return np.where(ties, 0.5, wins.astype(float)), len_tuned, len_base


def reference_fit(p, len_tuned, len_base):
    delta = np.asarray(len_tuned) - np.asarray(len_base)
    X = sm.add_constant(np.tanh(delta / delta.std(ddof=1)))
    return sm.GLM(p, X, family=sm.families.Binomial()).fit().params


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lc_matches_a_statsmodels_glm_fit(seed):
    p, a, b = synthetic(400, strength=0.3, length_effect=1.5, seed=seed)
    ours = lc_fit(p, a, b)
    ref = reference_fit(p, a, b)
    assert ours == pytest.approx(tuple(ref), rel=1e-2, abs=5e-3)  # the weak length penalty moves it a little
    assert lc_win_rate(p, a, b) == pytest.approx(1 / (1 + np.exp(-ref[0])), abs=1e-3)


def test_length_bias_is_removed_and_unbiased_data_is_left_alone():
    # Equal models, a judge that loves length: raw win rate high, length-controlled near 50%.
    p, a, b = synthetic(2000, strength=0.0, length_effect=2.5, seed=7)
    report = summarise(p, a, b)
    assert report["win_rate"] > 0.65
    assert abs(report["lc_win_rate"] - 0.5) < 0.06
    assert report["lc_gap_warning"] and report["length_coefficient"] > 1.5
    assert report["verdict"] == "unclear"  # 50% is inside the LC interval despite the raw 65%+
    # No length taste: LC ≈ raw.
    p, a, b = synthetic(2000, strength=0.6, length_effect=0.0, seed=8)
    report = summarise(p, a, b)
    assert abs(report["lc_win_rate"] - report["win_rate"]) < 0.03 and not report["lc_gap_warning"]
    assert report["verdict"] == "working" and report["lc_win_rate_ci95"][0] > 0.5


def test_intervals_and_the_verdict_line():
    assert bootstrap_mean([1.0, 0.0] * 50) == pytest.approx([0.4, 0.6], abs=0.03)
    assert verdict_line(0.6, [0.52, 0.68], 400)[0] == "working"
    assert verdict_line(0.6, [0.45, 0.75], 400)[0] == "unclear"  # a high point estimate is not enough
    assert verdict_line(0.4, [0.3, 0.48], 400)[0] == "worse"
    assert verdict_line(1.0, [1.0, 1.0], 1)[0] == "too_few"  # one prompt proves nothing
    # A few prompts where length separates wins from losses: the fit stays near the raw rate instead of running off
    # (unpenalised, 4 shorter wins and 2 longer losses gave an LC of 22%).
    assert abs(lc_win_rate([1, 1, 1, 1, 0, 0], [100, 110, 120, 130, 400, 420], [300] * 6) - 4 / 6) < 0.2
    # Same lengths everywhere: nothing to control for, LC is the raw rate.
    assert lc_win_rate([1, 0, 1, 1], [5, 5, 5, 5], [5, 5, 5, 5]) == 0.75
