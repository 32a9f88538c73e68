"""Agreement between two raters over the same items (a judge against human consensus, or against gold answers):
Cohen's kappa (scikit-learn) with the number of items and a 95% bootstrap interval (items resampled)."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.metrics import cohen_kappa_score


def _kappa(x: np.ndarray, y: np.ndarray, labels: list) -> float | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # undefined kappa (one category): NaN, reported as None
        value = cohen_kappa_score(x, y, labels=labels)
    return float(value) if np.isfinite(value) else None


def kappa_with_ci(x, y, *, labels: list, n_boot: int = 500, seed: int = 0) -> dict:
    """``{"kappa", "ci95": [lo, hi], "n", "agreement"}`` for two parallel sequences of categories."""
    x, y = np.asarray(x, dtype=object), np.asarray(y, dtype=object)
    n = len(x)
    if n == 0:
        return {"kappa": None, "ci95": [None, None], "n": 0, "agreement": None}
    kappa = _kappa(x, y, labels)
    values = []
    if n >= 2 and n_boot:
        rng = np.random.default_rng(seed)
        for _ in range(n_boot):
            idx = rng.integers(0, n, n)
            value = _kappa(x[idx], y[idx], labels)
            if value is not None:
                values.append(value)
    lo, hi = (float(v) for v in np.percentile(values, [2.5, 97.5])) if values else (None, None)
    return {"kappa": kappa, "ci95": [lo, hi], "n": int(n), "agreement": float((x == y).mean())}
