"""Per-pair consensus from several labels: majority vote and a reliability-weighted estimate (Dawid–Skene).

Policy (label space ``with_ties``: A, B, no preference):
- **Majority**: the category with most votes; "none" when the top two are level. ``vote_margin`` is
  (votes for A − votes for B) / labels, in [−1, 1]; ``agreement`` is the share of labels in the majority category.
- **Dawid–Skene** (EM over one confusion matrix per annotator, started from the vote shares, add-one smoothing):
  a posterior over the three categories for every pair, so a careless annotator counts for less than a careful one.
  ``p_a_better`` = P(A) + ½·P(no preference): the probability that A is preferred, with "no preference" split evenly.
- Tie and both-bad are both "no preference" here; pairs whose only labels are no-preference get p_a_better 0.5.
"""

from __future__ import annotations

import numpy as np

from .agreement import MISSING, RatingMatrix

A, B, NONE = 0, 1, 2


def _labels(m: RatingMatrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    items, raters = np.nonzero(m.codes != MISSING)
    return items, raters, m.codes[items, raters]


def dawid_skene(m: RatingMatrix, *, iterations: int = 50, tol: float = 1e-6) -> np.ndarray:
    """Posterior (n_items, n_categories) over each item's true category. Items without labels get the prior."""
    k = m.n_categories
    items, raters, cats = _labels(m)
    n_items, n_raters = m.codes.shape
    posterior = np.zeros((n_items, k))
    np.add.at(posterior, (items, cats), 1.0)
    totals = posterior.sum(axis=1, keepdims=True)
    posterior = np.where(totals > 0, posterior / np.where(totals == 0, 1, totals), 1.0 / k)
    if n_items == 0:  # a project nobody has labelled yet (a campaign's, an evaluation's)
        return posterior
    for _ in range(iterations):
        # M-step: class prior and each annotator's confusion matrix (true category -> given category).
        prior = (posterior.sum(axis=0) + 1.0) / (n_items + k)
        confusion = np.ones((n_raters, k, k))
        np.add.at(confusion, (raters, slice(None), cats), posterior[items])
        confusion /= confusion.sum(axis=2, keepdims=True)
        # E-step: log posterior = log prior + sum of log P(given label | true category) over the item's labels.
        log_post = np.tile(np.log(prior), (n_items, 1))
        np.add.at(log_post, items, np.log(confusion[raters, :, cats]))
        log_post -= log_post.max(axis=1, keepdims=True)
        new = np.exp(log_post)
        new /= new.sum(axis=1, keepdims=True)
        if np.abs(new - posterior).max() < tol:
            posterior = new
            break
        posterior = new
    return posterior


def item_consensus(m: RatingMatrix) -> list[dict]:
    """One dict per item of the matrix (``m.items`` order). ``m`` must use the with_ties label space."""
    if m.n_categories != 3:
        raise ValueError("consensus is defined on the with_ties label space (A, B, no preference)")
    votes = np.zeros((len(m.items), 3), dtype=np.int64)
    items, _, cats = _labels(m)
    np.add.at(votes, (items, cats), 1)
    n = votes.sum(axis=1)
    posterior = dawid_skene(m)
    ranked = np.sort(votes, axis=1)
    majority = np.where(ranked[:, -1] > ranked[:, -2], votes.argmax(axis=1), -1)
    names = {A: "A", B: "B", NONE: "no_preference", -1: "none"}
    out = []
    for i, item in enumerate(m.items):
        total = int(n[i])
        out.append(
            {
                "pair_id": item.item() if hasattr(item, "item") else item,
                "labels": total,
                "votes": {"A": int(votes[i, A]), "B": int(votes[i, B]), "no_preference": int(votes[i, NONE])},
                "majority": names[int(majority[i])],
                "vote_margin": (int(votes[i, A]) - int(votes[i, B])) / total if total else 0.0,
                "agreement": int(ranked[i, -1]) / total if total else 0.0,
                "p_a_better": float(posterior[i, A] + 0.5 * posterior[i, NONE]),
            }
        )
    return out
