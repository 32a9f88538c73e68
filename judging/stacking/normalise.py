"""One scorer's margins over a project's pairs, put on a common scale (pure numpy/scipy, no Django).

``zscore`` and ``rank`` are the textbook transforms of a sample:

- ``zscore(v)``: (v - mean) / sd, with the population sd (ddof 0); a constant sample (sd 0) gives zeros.
- ``rank(v)``: average ranks of ties (scipy.stats.rankdata, 1..n) mapped linearly onto [-1, 1]:
  2 (r - 1) / (n - 1) - 1; a single value, or a constant sample, gives zeros.

A margin is score(A) - score(B), and which response of a pair is "A" is an accident of the import. Its zero means
"no preference" and its sign is the verdict, so a scorer's margins must not be centred on their own mean: a scorer
that prefers A on every pair would come out preferring B on half of them. ``symmetric`` therefore normalises each
margin within the sample of both orientations of every pair ({m} together with {-m}), whose mean and median are 0
by construction. The result keeps the sign (0 stays 0), is odd (negating a margin negates its value) and only the
scale of the scorer is taken out: symmetric z is m / sqrt(mean(m^2)) (``symmetric_z``); symmetric rank is the
position of m among ±m, so the strongest preference for A is near 1 and for B near -1. Composites use these
(``normalise``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.stats import rankdata


def _as_array(values) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).ravel()
    if not np.isfinite(array).all():
        raise ValueError("margins must be finite numbers")
    return array


def zscore(values) -> np.ndarray:
    """(v - mean) / population sd; zeros when the sample is constant (or empty)."""
    v = _as_array(values)
    if len(v) == 0:
        return v
    centred = v - v.mean()
    sd = np.sqrt(np.mean(centred**2))
    # relative to the values' size: float noise in a constant sample is not a spread
    if sd <= 1e-12 * max(1.0, float(np.abs(v).max())):
        return np.zeros_like(v)
    return centred / sd


def rank(values) -> np.ndarray:
    """Average ranks of ties mapped onto [-1, 1] (lowest -1, highest 1); zeros for one value or a constant sample."""
    v = _as_array(values)
    if len(v) < 2:
        return np.zeros_like(v)
    r = rankdata(v, method="average")
    n = len(v)
    # = 2 (r - 1) / (n - 1) - 1; this form is exact for ranks that mirror (r and n + 1 - r give opposite values)
    return (2.0 * r - n - 1.0) / (n - 1.0)


def symmetric(transform: Callable[[np.ndarray], np.ndarray], values) -> np.ndarray:
    """``transform`` applied to the sample of both orientations of every pair, read back for the given ones."""
    v = _as_array(values)
    return transform(np.concatenate([v, -v]))[: len(v)]


def symmetric_z(values) -> np.ndarray:
    """``symmetric(zscore, v)`` computed directly: v / sqrt(mean(v^2)) (the mean of ±v is 0), so signs are exact
    (centring in floating point can leave a tiny mean that flips a 0); all zeros (or none) give zeros."""
    v = _as_array(values)
    top = float(np.abs(v).max()) if len(v) else 0.0
    if top == 0.0:
        return np.zeros_like(v)
    return v / (top * np.sqrt(np.mean((v / top) ** 2)))  # scaled first: squares of tiny margins do not underflow


def symmetric_rank(values) -> np.ndarray:
    return symmetric(rank, values)


NORMALISERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"z": symmetric_z, "rank": symmetric_rank}


def normalise(kind: str, margins) -> np.ndarray:
    """A scorer's margins normalised as a composite does: the named transform over both orientations."""
    return NORMALISERS[kind](margins)
