"""The maths of a head-to-head evaluation, on plain arrays (no Django): win rate with a bootstrap interval over
prompts, AlpacaEval 2's length-controlled win rate, and the verdict line.

Preferences are per prompt, in [0, 1]: 1 when the judge prefers the tuned (candidate) model, 0 when it prefers the
baseline, 0.5 for a tie; a prompt judged in both orders gets the mean of the two.

Length control (Dubois et al. 2024, AlpacaEval 2): a logistic regression of the preference on
tanh(length difference / its standard deviation); the length-controlled win rate is the fitted probability with the
length term set to zero, i.e. sigmoid(intercept). AlpacaEval's third term, an instruction-difficulty effect fitted
across the leaderboard's many models, is left out: with two models on a custom prompt set it is not identifiable
(alpaca_eval #316; its NaN LC, #453, is what fitting it anyway gives).
"""

from __future__ import annotations

import math
import warnings

import numpy as np

BOOTSTRAP = 2000
GAP_WARNING = 0.10  # AlpacaEval warns when raw and length-controlled win rates differ by more than 10 points
WORKING_AT = 0.55  # seed 000: above 55% against the base, DPO training is working
MIN_PROMPTS = 10  # fewer judged prompts than this give no verdict, whatever the interval says
# A weak L2 penalty on the length coefficient (scikit-learn does not penalise the intercept): where length
# separates the outcomes of a few prompts, the unpenalised fit runs off to any intercept at all; on hundreds of
# prompts the penalty moves the fit by less than 0.1 points (tests/training/test_evaluation_stats.py).
LENGTH_C = 10.0


def bootstrap_mean(values, *, n_boot: int = BOOTSTRAP, seed: int = 0) -> list[float] | None:
    """95% percentile interval of the mean over resampled prompts."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return None
    if x.size == 1:
        return [float(x[0]), float(x[0])]
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return [float(lo), float(hi)]


def _length_feature(len_candidate, len_baseline) -> np.ndarray | None:
    delta = np.asarray(len_candidate, dtype=float) - np.asarray(len_baseline, dtype=float)
    sd = delta.std(ddof=1) if delta.size > 1 else 0.0
    if not sd or not math.isfinite(sd):
        return None  # no length variation: nothing to control for
    return np.tanh(delta / sd)


def lc_fit(preferences, len_candidate, len_baseline) -> tuple[float, float] | None:
    """(intercept, length coefficient) of the fractional logistic regression; None without length variation.
    Fractional outcomes are fitted as two weighted rows (y=1 with weight p, y=0 with weight 1-p), which maximises
    the same Bernoulli likelihood as a binomial GLM on p."""
    from sklearn.linear_model import LogisticRegression

    p = np.asarray(preferences, dtype=float)
    feature = _length_feature(len_candidate, len_baseline)
    if feature is None or p.size < 3:
        return None
    x = np.concatenate([feature, feature])[:, None]
    y = np.concatenate([np.ones_like(p), np.zeros_like(p)])
    w = np.concatenate([p, 1 - p])
    if w[y == 1].sum() == 0 or w[y == 0].sum() == 0:
        return None  # every prompt went one way: no length effect can be told apart
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # separable data converges to large but finite coefficients
        model = LogisticRegression(C=LENGTH_C, max_iter=1000).fit(x, y, sample_weight=w)
    return float(model.intercept_[0]), float(model.coef_[0, 0])


def lc_win_rate(preferences, len_candidate, len_baseline) -> float | None:
    """The length-controlled win rate: sigmoid(intercept), the fit with the length term zeroed; the raw win rate
    when the lengths do not vary."""
    p = np.asarray(preferences, dtype=float)
    if p.size == 0:
        return None
    fit = lc_fit(p, len_candidate, len_baseline)
    if fit is None:
        return float(p.mean())
    return float(1 / (1 + math.exp(-fit[0])))


def lc_interval(preferences, len_candidate, len_baseline, *, n_boot: int = 500, seed: int = 0) -> list[float] | None:
    """95% bootstrap interval of the length-controlled win rate (the regression refitted on each resample)."""
    p = np.asarray(preferences, dtype=float)
    a, b = np.asarray(len_candidate, dtype=float), np.asarray(len_baseline, dtype=float)
    if p.size < 2:
        return None
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        idx = rng.integers(0, p.size, size=p.size)
        values.append(lc_win_rate(p[idx], a[idx], b[idx]))
    lo, hi = np.percentile(values, [2.5, 97.5])
    return [float(lo), float(hi)]


def verdict_line(rate: float | None, ci: list[float] | None, n: int, *,
                 what: str = "the tuned model") -> tuple[str, str]:  # fmt: skip
    """(code, sentence): "working" when the whole interval is above 50%, "worse" when it is below, "unclear"
    otherwise, "too_few" under MIN_PROMPTS judged prompts; the sentence names the point estimate against seed 000's
    55% line."""
    if rate is None or ci is None or not n:
        return "none", "Nothing was judged."
    pct = f"{100 * rate:.1f}% (95% CI {100 * ci[0]:.1f}–{100 * ci[1]:.1f}%, n={n})"
    if n < MIN_PROMPTS:
        return "too_few", f"Too few prompts to tell: {what} wins {pct}; evaluate on {MIN_PROMPTS} or more."
    if ci[0] > 0.5:
        strong = "above" if rate > WORKING_AT else "below"
        return "working", f"Training is working: {what} wins {pct}, the interval above 50% ({strong} the 55% line)."
    if ci[1] < 0.5:
        return "worse", f"Training made it worse: {what} wins {pct}, the interval below 50%."
    return "unclear", f"No better, as far as these prompts can tell: {what} wins {pct}, an interval that includes 50%."


def summarise(preferences, len_candidate, len_baseline, *, seed: int = 0) -> dict:
    """The headline figures of one comparison."""
    p = np.asarray(preferences, dtype=float)
    a, b = np.asarray(len_candidate, dtype=float), np.asarray(len_baseline, dtype=float)
    n = int(p.size)
    raw = float(p.mean()) if n else None
    lc = lc_win_rate(p, a, b) if n else None
    fit = lc_fit(p, a, b) if n else None
    out = {
        "n": n,
        "wins": int((p > 0.5).sum()),
        "ties": int((p == 0.5).sum()),
        "losses": int((p < 0.5).sum()),
        "win_rate": raw,
        "win_rate_ci95": bootstrap_mean(p, seed=seed),
        "lc_win_rate": lc,
        "lc_win_rate_ci95": lc_interval(p, a, b, seed=seed) if fit is not None else bootstrap_mean(p, seed=seed),
        "length_coefficient": fit[1] if fit else None,
        "lc_gap_warning": bool(raw is not None and lc is not None and abs(raw - lc) > GAP_WARNING),
        "mean_length_change": float((a - b).mean()) if n else None,
        "mean_length_candidate": float(a.mean()) if n else None,
        "mean_length_baseline": float(b.mean()) if n else None,
    }
    code, sentence = verdict_line(lc, out["lc_win_rate_ci95"], n)
    out["verdict"], out["verdict_text"] = code, sentence
    return out
