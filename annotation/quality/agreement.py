"""Inter-annotator agreement on preference labels, computed on a rating matrix with numpy.

Label spaces (how a stored choice becomes a category; skips are never labels):
- ``with_ties`` (default): A, B, and "no preference" (tie and both-bad together: neither response preferred).
- ``full``: A, B, tie and both-bad as four categories.
- ``decisive``: A and B only; a tie or both-bad label is left out, as if that annotator had not labelled the pair.

Figures: pairwise Cohen's kappa for every two annotators who share items (the same number as scikit-learn's
``cohen_kappa_score``, computed for all pairs at once), Fleiss' kappa (the variable-raters form: it equals the
classic formula when every item has the same number of labels), Krippendorff's alpha (the ``krippendorff`` package,
nominal) and raw percent agreement, each project-level figure with a 95% bootstrap confidence interval over items.
A figure that is undefined (one category only, no item with two labels) is None, never NaN.

Everything is numpy over the labels, never a Python loop over labels or items, so the report stays fast on large
projects (docs/PERFORMANCE.md, "Quality report": 1,000,000 labels from 200 annotators).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import krippendorff
import numpy as np
import scipy.sparse

LABEL_SPACES: dict[str, dict[str, int]] = {
    "with_ties": {"A": 0, "B": 1, "tie": 2, "both_bad": 2},
    "full": {"A": 0, "B": 1, "tie": 2, "both_bad": 3},
    "decisive": {"A": 0, "B": 1},
}
DEFAULT_SPACE = "with_ties"
MISSING = -1
# Stored choices by integer code: annotation/quality/loading.py fetches choices as these codes, never as strings.
CHOICES = ("A", "B", "tie", "both_bad")


@dataclass(frozen=True, eq=False)
class RatingMatrix:
    """The labels of a set of items, at most one per (item, annotator), as parallel arrays sorted by item and then
    annotator: annotator ``raters[rater_idx[j]]`` put item ``items[item_idx[j]]`` in category ``label_codes[j]``.

    ``codes[i, r]`` is the same as a dense (items x annotators) matrix with MISSING where there is no label; it is
    built on first use (consensus needs it), because at 300,000 items x 200 annotators it is large."""

    items: np.ndarray
    raters: list[str]
    n_categories: int
    item_idx: np.ndarray
    rater_idx: np.ndarray
    label_codes: np.ndarray

    @cached_property
    def codes(self) -> np.ndarray:
        codes = np.full((len(self.items), len(self.raters)), MISSING, dtype=np.int8)
        codes[self.item_idx, self.rater_idx] = self.label_codes
        return codes


def _space(space: str) -> dict[str, int]:
    if space not in LABEL_SPACES:
        raise ValueError(f"unknown label space {space!r}; use one of {', '.join(LABEL_SPACES)}")
    return LABEL_SPACES[space]


def rating_matrix(item_ids, rater_keys, choices, *, space: str = DEFAULT_SPACE) -> RatingMatrix:
    """Build the matrix from parallel sequences of (item, annotator, stored choice). Choices outside the label space
    are dropped; if an annotator labelled an item twice, the last label wins."""
    _space(space)
    values, choice_idx = np.unique(np.asarray(choices, dtype=str), return_inverse=True)
    codes = np.array([CHOICES.index(v) if v in CHOICES else MISSING for v in values.tolist()], dtype=np.int8)
    raters, rater_idx = np.unique(np.asarray(rater_keys, dtype=str), return_inverse=True)
    return rating_matrix_from_codes(np.asarray(item_ids), rater_idx, raters.tolist(), codes[choice_idx], space=space)


def rating_matrix_from_codes(item_ids, rater_idx, raters: list[str], choice_codes, *, space: str) -> RatingMatrix:
    """The same from arrays: ``rater_idx`` indexes ``raters`` (unique names, any order) and ``choice_codes`` index
    CHOICES (MISSING: not a choice). Annotators are ordered by name, as ``rating_matrix`` orders them."""
    mapping = _space(space)
    # Category of each stored choice code; the last entry is what a MISSING code (index -1) becomes.
    to_category = np.array([mapping.get(c, MISSING) for c in CHOICES] + [MISSING], dtype=np.int8)
    categories = to_category[np.asarray(choice_codes, dtype=np.intp)]
    keep = categories != MISSING
    item_ids, rater_idx, categories = np.asarray(item_ids)[keep], np.asarray(rater_idx)[keep], categories[keep]
    present = np.flatnonzero(np.bincount(rater_idx, minlength=len(raters)))
    names = [raters[r] for r in present]
    by_name = sorted(range(len(names)), key=names.__getitem__)
    renumber = np.zeros(len(raters), dtype=np.intp)
    renumber[present[by_name]] = np.arange(len(names))
    rater_idx = renumber[rater_idx]
    items, item_idx = np.unique(item_ids, return_inverse=True)
    # Sort by (item, annotator). Of several labels by one annotator on one item, keep the last one given.
    key = item_idx.astype(np.int64) * max(len(names), 1) + rater_idx
    order = np.argsort(key)
    sorted_key = key[order]
    starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]]) if len(key) else np.empty(0, np.intp)
    last = np.maximum.reduceat(order, starts) if len(starts) < len(order) else order
    return RatingMatrix(
        items=items,
        raters=[names[i] for i in by_name],
        n_categories=max(mapping.values()) + 1,
        item_idx=item_idx[last],
        rater_idx=rater_idx[last],
        label_codes=categories[last],
    )


def category_counts(m: RatingMatrix) -> np.ndarray:
    """(n_items, n_categories) how many annotators put each item in each category, items in ``m.items`` order."""
    flat = np.bincount(m.item_idx * m.n_categories + m.label_codes, minlength=len(m.items) * m.n_categories)
    return flat.reshape(len(m.items), m.n_categories)


def _defined(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def _pairwise_kappa(m: RatingMatrix, *, min_shared: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cohen's kappa of every two annotators with at least ``min_shared`` items in common, from one confusion matrix
    per annotator pair. Returns (a, b, shared items, kappa; NaN where undefined), a < b, in (a, b) order.

    All confusion matrices come from one sparse product: with X the (items x annotator-category) indicator matrix,
    (X^T X)[a*k + c, b*k + d] counts the items where annotator a said c and annotator b said d. That costs the sum
    over items of (labels on the item)^2, in compiled code, with memory bounded by (annotators x categories)^2.
    Vectorized because scikit-learn's ``cohen_kappa_score`` costs ~0.6 ms a call, and 200 annotators are 19,900
    pairs: the loop over pairs took 160 s at 1,000,000 labels (docs/PERFORMANCE.md). The arithmetic is
    scikit-learn's (observed and expected disagreement off the diagonal, every category a label), and the tests
    compare every pair with ``cohen_kappa_score``."""
    n_raters, k = len(m.raters), m.n_categories
    x = scipy.sparse.csr_matrix(
        (np.ones(len(m.item_idx), dtype=np.int64), (m.item_idx, m.rater_idx * k + m.label_codes)),
        shape=(len(m.items), n_raters * k),
    )
    both = (x.T @ x).tocoo()
    a, c = np.divmod(both.row.astype(np.intp), k)
    b, d = np.divmod(both.col.astype(np.intp), k)
    upper = a < b
    a, b, c, d, n = a[upper], b[upper], c[upper], d[upper], both.data[upper]
    pair_key = a.astype(np.int64) * n_raters + b
    if n_raters <= 4096:  # a flag per possible annotator pair fits in memory: number the pairs without a sort
        present = np.bincount(pair_key, minlength=n_raters * n_raters) > 0
        keys, pair_idx = np.flatnonzero(present), (np.cumsum(present) - 1)[pair_key]
    else:
        keys, pair_idx = np.unique(pair_key, return_inverse=True)
    # keys ascending: a ascending, then b
    cells = pair_idx * (k * k) + c * k + d
    confusion = np.bincount(cells, weights=n, minlength=len(keys) * k * k).reshape(len(keys), k, k)
    shared = confusion.sum(axis=(1, 2))
    enough = shared >= min_shared
    keys, confusion, shared = keys[enough], confusion[enough], shared[enough]
    off_diagonal = ~np.eye(k, dtype=bool)
    observed = (confusion * off_diagonal).sum(axis=(1, 2))
    rows, cols = confusion.sum(axis=2), confusion.sum(axis=1)
    expected = (cols[:, :, None] * rows[:, None, :] / shared[:, None, None] * off_diagonal).sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = np.where(expected > 0, 1 - observed / np.where(expected > 0, expected, 1), np.nan)
    return keys // n_raters, keys % n_raters, shared.astype(np.int64), kappa


def _pairs_list(m: RatingMatrix, a, b, shared, kappa) -> list[dict]:
    kappas = [None if np.isnan(x) else x for x in kappa.tolist()]
    return [
        {"annotator_a": m.raters[i], "annotator_b": m.raters[j], "kappa": x, "shared_items": n}
        for i, j, x, n in zip(a.tolist(), b.tolist(), kappas, shared.tolist(), strict=True)
    ]


def cohen_pairwise(m: RatingMatrix, *, min_shared: int = 2) -> list[dict]:
    """Cohen's kappa for every two annotators with at least ``min_shared`` items in common."""
    return _pairs_list(m, *_pairwise_kappa(m, min_shared=min_shared))


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


def _alpha_from_counts(counts: np.ndarray) -> float | None:
    counts = counts[counts.sum(axis=1) >= 2]
    if (counts.sum(axis=0) > 0).sum() < 2:
        return None  # one category only, or no item with two labels: alpha is undefined
    return _defined(krippendorff.alpha(value_counts=counts, level_of_measurement="nominal"))


def fleiss_kappa(m: RatingMatrix) -> float | None:
    return _fleiss_from_counts(category_counts(m))


def percent_agreement(m: RatingMatrix) -> float | None:
    """Mean over items with two or more labels of the share of agreeing annotator pairs."""
    return _percent_from_counts(category_counts(m))


def krippendorff_alpha(m: RatingMatrix) -> float | None:
    return _alpha_from_counts(category_counts(m))


FIGURES = {"fleiss_kappa": _fleiss_from_counts, "krippendorff_alpha": _alpha_from_counts,
           "percent_agreement": _percent_from_counts}  # fmt: skip


def _count_patterns(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of ``counts`` and how many times each occurs."""
    base = int(counts.max()) + 1 if len(counts) else 1
    if base ** counts.shape[1] < 2**62:  # one integer per row: a 1-D unique is much faster than unique(axis=0)
        _, first, frequency = np.unique(counts @ base ** np.arange(counts.shape[1]), return_index=True,
                                        return_counts=True)  # fmt: skip
        return counts[first], frequency
    return np.unique(counts, axis=0, return_counts=True)


def _resampled_figures(patterns: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    """Each figure for each row of ``weights`` (how many times a resample drew each count pattern); NaN where it is
    undefined. Krippendorff's alpha is the nominal formula on the coincidence matrix: with n_c labels in category c
    over all items, alpha = 1 - (n - 1) * sum over items of (m^2 - sum_c x_c^2) / (m - 1), over n^2 - sum_c n_c^2,
    for an item with m labels, x_c of them in category c (tests compare it with the krippendorff package)."""
    x = patterns.astype(float)
    m = x.sum(axis=1)
    agreeing = (x * (x - 1)).sum(axis=1) / (m * (m - 1))
    disagreeing = (m**2 - (x**2).sum(axis=1)) / (m - 1)
    w = weights.astype(float)
    percent = (w @ agreeing) / w.sum(axis=1)
    by_category = w @ x
    n = by_category.sum(axis=1)
    spread = n**2 - (by_category**2).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        p_e = ((by_category / n[:, None]) ** 2).sum(axis=1)
        fleiss = np.where(p_e < 1.0, (percent - p_e) / (1.0 - p_e), np.nan)
        alpha = np.where(spread > 0, 1.0 - (n - 1) * (w @ disagreeing) / spread, np.nan)
    return {"fleiss_kappa": fleiss, "krippendorff_alpha": alpha, "percent_agreement": percent}


def _bootstrap(counts: np.ndarray, *, n_boot: int, seed: int) -> dict[str, list[float | None]]:
    """95% percentile interval of each figure over items resampled with replacement (the same resamples for all).

    The figures depend on the items only through each item's count vector (labels per category), so a resample is
    fully described by how many times it drew each distinct count vector, and those numbers are multinomial with
    the vectors' frequencies as probabilities: exactly the distribution of drawing n items with replacement, at the
    cost of a few small matrix products instead of a pass over every item for every resample."""
    counts = counts[counts.sum(axis=1) >= 2]
    if len(counts) < 2:
        return {name: [None, None] for name in FIGURES}
    patterns, frequency = _count_patterns(counts)
    weights = np.random.default_rng(seed).multinomial(len(counts), frequency / len(counts), size=n_boot)
    out = {}
    for name, values in _resampled_figures(patterns, weights).items():
        values = values[np.isfinite(values)]
        out[name] = [float(v) for v in np.percentile(values, [2.5, 97.5])] if len(values) else [None, None]
    return out


def figures_from_counts(counts: np.ndarray, *, n_boot: int = 500, seed: int = 0) -> dict:
    """Fleiss' kappa, Krippendorff's alpha and percent agreement of items given by their category counts, each
    with its 95% bootstrap interval. Only items with two or more labels count, so the counts of several parts of a
    project (in item order) can be concatenated first, keeping only those items."""
    intervals = _bootstrap(counts, n_boot=n_boot, seed=seed)
    return {name: {"value": figure(counts), "ci95": intervals[name]} for name, figure in FIGURES.items()}


def agreement_summary(m: RatingMatrix, *, n_boot: int = 500, seed: int = 0) -> dict:
    """Project-level figures with bootstrap CIs, pairwise kappas and each annotator's mean kappa with the others."""
    a, b, shared, kappa = _pairwise_kappa(m)
    pairs = _pairs_list(m, a, b, shared, kappa)
    defined = ~np.isnan(kappa)
    n_raters = len(m.raters)
    kappa_sum = np.bincount(a[defined], kappa[defined], n_raters) + np.bincount(b[defined], kappa[defined], n_raters)
    kappa_count = np.bincount(a[defined], minlength=n_raters) + np.bincount(b[defined], minlength=n_raters)
    counts = category_counts(m)
    return {
        "items_with_two_or_more_labels": int((counts.sum(axis=1) >= 2).sum()),
        "annotators": n_raters,
        **figures_from_counts(counts, n_boot=n_boot, seed=seed),
        "pairwise_cohen_kappa": pairs,
        "mean_kappa_by_annotator": {
            r: (float(kappa_sum[i] / kappa_count[i]) if kappa_count[i] else None) for i, r in enumerate(m.raters)
        },
    }
