"""Inter-annotator agreement on preference labels, computed on a rating matrix with numpy.

Label spaces (how a stored choice becomes a category; skips are never labels):
- ``with_ties`` (default): A, B, and "no preference" (tie and both-bad together: neither response preferred).
- ``full``: A, B, tie and both-bad as four categories.
- ``decisive``: A and B only; a tie or both-bad label is left out, as if that annotator had not labelled the pair.

Figures: pairwise Cohen's kappa (scikit-learn's ``cohen_kappa_score``) for every two annotators who share items,
Fleiss' kappa (the variable-raters form: it equals the classic formula when every item has the same number of
labels), Krippendorff's alpha (the ``krippendorff`` package, nominal) and raw percent agreement, each project-level
figure with a 95% bootstrap confidence interval over items. A figure that is undefined (one category only, no item
with two labels) is None, never NaN.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import krippendorff
import numpy as np
from sklearn.metrics import cohen_kappa_score

LABEL_SPACES: dict[str, dict[str, int]] = {
    "with_ties": {"A": 0, "B": 1, "tie": 2, "both_bad": 2},
    "full": {"A": 0, "B": 1, "tie": 2, "both_bad": 3},
    "decisive": {"A": 0, "B": 1},
}
DEFAULT_SPACE = "with_ties"
MISSING = -1


@dataclass(frozen=True)
class RatingMatrix:
    """``codes[i, r]`` is annotator r's category for item i, or MISSING."""

    codes: np.ndarray
    items: np.ndarray
    raters: list[str]
    n_categories: int


def rating_matrix(item_ids, rater_keys, choices, *, space: str = DEFAULT_SPACE) -> RatingMatrix:
    """Build the matrix from parallel sequences of (item, annotator, stored choice). Choices outside the label space
    are dropped; if an annotator labelled an item twice, the last label wins."""
    if space not in LABEL_SPACES:
        raise ValueError(f"unknown label space {space!r}; use one of {', '.join(LABEL_SPACES)}")
    mapping = LABEL_SPACES[space]
    choice_arr = np.asarray(choices, dtype=object)
    code_arr = np.full(len(choice_arr), MISSING, dtype=np.int64)
    for choice, code in mapping.items():
        code_arr[choice_arr == choice] = code
    keep = code_arr != MISSING
    items, item_idx = np.unique(np.asarray(item_ids)[keep], return_inverse=True)
    raters, rater_idx = np.unique(np.asarray(rater_keys, dtype=str)[keep], return_inverse=True)
    codes = np.full((len(items), len(raters)), MISSING, dtype=np.int64)
    codes[item_idx, rater_idx] = code_arr[keep]
    n_categories = max(mapping.values()) + 1
    return RatingMatrix(codes=codes, items=items, raters=[str(r) for r in raters], n_categories=n_categories)


def _category_counts(codes: np.ndarray, n_categories: int) -> np.ndarray:
    """(n_items, n_categories) how many annotators put each item in each category."""
    counts = np.zeros((codes.shape[0], n_categories), dtype=np.int64)
    rows, cols = np.nonzero(codes != MISSING)
    np.add.at(counts, (rows, codes[rows, cols]), 1)
    return counts


def _defined(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def cohen_pairwise(m: RatingMatrix, *, min_shared: int = 2) -> list[dict]:
    """Cohen's kappa for every two annotators with at least ``min_shared`` items in common."""
    labelled = m.codes != MISSING
    shared = labelled.T.astype(np.int64) @ labelled.astype(np.int64)
    labels = list(range(m.n_categories))
    out = []
    for a, b in zip(*np.nonzero(np.triu(shared >= min_shared, k=1)), strict=True):
        both = labelled[:, a] & labelled[:, b]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an undefined kappa warns and is NaN: reported as None instead
            kappa = cohen_kappa_score(m.codes[both, a], m.codes[both, b], labels=labels)
        out.append({"annotator_a": m.raters[a], "annotator_b": m.raters[b], "kappa": _defined(kappa),
                    "shared_items": int(shared[a, b])})  # fmt: skip
    return out


def _fleiss_from_counts(counts: np.ndarray) -> float | None:
    n = counts.sum(axis=1)
    counts = counts[n >= 2]
    n = n[n >= 2]
    if not len(n):
        return None
    p_item = (counts * (counts - 1)).sum(axis=1) / (n * (n - 1))
    p_cat = counts.sum(axis=0) / n.sum()
    p_e = float((p_cat**2).sum())
    if p_e >= 1.0:
        return None
    return (float(p_item.mean()) - p_e) / (1.0 - p_e)


def _percent_from_counts(counts: np.ndarray) -> float | None:
    n = counts.sum(axis=1)
    counts, n = counts[n >= 2], n[n >= 2]
    if not len(n):
        return None
    return float(((counts * (counts - 1)).sum(axis=1) / (n * (n - 1))).mean())


def fleiss_kappa(m: RatingMatrix) -> float | None:
    return _fleiss_from_counts(_category_counts(m.codes, m.n_categories))


def percent_agreement(m: RatingMatrix) -> float | None:
    """Mean over items with two or more labels of the share of agreeing annotator pairs."""
    return _percent_from_counts(_category_counts(m.codes, m.n_categories))


def krippendorff_alpha(m: RatingMatrix) -> float | None:
    codes = m.codes[(m.codes != MISSING).sum(axis=1) >= 2]
    if not len(codes) or len(np.unique(codes[codes != MISSING])) < 2:
        return None  # one category only: alpha is undefined
    data = np.where(codes == MISSING, np.nan, codes.astype(float)).T
    return _defined(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))


def _bootstrap(m: RatingMatrix, statistic, *, n_boot: int, seed: int) -> tuple[float | None, float | None]:
    """95% percentile interval of ``statistic`` over items resampled with replacement."""
    codes = m.codes[(m.codes != MISSING).sum(axis=1) >= 2]
    if len(codes) < 2:
        return None, None
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        sample = RatingMatrix(codes[rng.integers(0, len(codes), len(codes))], m.items, m.raters, m.n_categories)
        value = statistic(sample)
        if value is not None:
            values.append(value)
    if not values:
        return None, None
    lo, hi = np.percentile(values, [2.5, 97.5])
    return float(lo), float(hi)


def agreement_summary(m: RatingMatrix, *, n_boot: int = 500, seed: int = 0) -> dict:
    """Project-level figures with bootstrap CIs, pairwise kappas and each annotator's mean kappa with the others."""
    pairs = cohen_pairwise(m)
    per_annotator: dict[str, list[float]] = {r: [] for r in m.raters}
    for p in pairs:
        if p["kappa"] is not None:
            per_annotator[p["annotator_a"]].append(p["kappa"])
            per_annotator[p["annotator_b"]].append(p["kappa"])
    figures = {}
    for name, statistic in (("fleiss_kappa", fleiss_kappa), ("krippendorff_alpha", krippendorff_alpha),
                            ("percent_agreement", percent_agreement)):  # fmt: skip
        lo, hi = _bootstrap(m, statistic, n_boot=n_boot, seed=seed)
        figures[name] = {"value": statistic(m), "ci95": [lo, hi]}
    return {
        "items_with_two_or_more_labels": int(((m.codes != MISSING).sum(axis=1) >= 2).sum()),
        "annotators": len(m.raters),
        **figures,
        "pairwise_cohen_kappa": pairs,
        "mean_kappa_by_annotator": {r: (float(np.mean(v)) if v else None) for r, v in per_annotator.items()},
    }
