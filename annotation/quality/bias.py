"""Human bias audits per annotator: side, length and speed.

- **Left-pick rate**: among decisive labels (A or B), the share where the annotator picked the response shown on
  the left, with a two-sided exact binomial test against 50% (scipy's ``binomtest``). Sides are randomized per
  assignment, so a careful annotator sits near 50%.
- **Longer-pick rate**: among decisive labels on pairs whose responses differ in length, the share where the
  longer response was picked (per annotator and for the project).
- **Time per item**: median and 10th percentile of time on item; an annotator is flagged as implausibly fast when
  their median is under ``FAST_SECONDS`` or under a quarter of the project's median.
Imported labels have no side or time and count only toward the longer-pick rate.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import binomtest

from .agreement import CHOICES

FAST_SECONDS = 3.0
_A, _B = CHOICES.index("A"), CHOICES.index("B")


def _rate(hits: np.ndarray) -> float | None:
    return float(hits.mean()) if len(hits) else None


def bias_report(rows: list[tuple]) -> dict:
    """``rows``: (annotator, choice, left_is_a, len_a, len_b, time_on_item_ms) per label."""
    names, rater = np.unique(np.asarray([r[0] for r in rows], dtype=str), return_inverse=True)
    to_code = {c: i for i, c in enumerate(CHOICES)}
    return bias_report_from_codes(
        raters=names.tolist(),
        rater=rater,
        choice=np.array([to_code.get(r[1], -1) for r in rows], dtype=np.int8),
        left_is_a=np.array([-1 if r[2] is None else int(r[2]) for r in rows], dtype=np.int8),
        longer=np.sign(np.array([r[3] for r in rows], dtype=np.int64) - np.array([r[4] for r in rows], dtype=np.int64)),
        time_ms=np.array([np.nan if r[5] is None else r[5] for r in rows], dtype=float),
    )


def bias_report_from_codes(*, raters: list[str], rater, choice, left_is_a, longer, time_ms) -> dict:
    """The same from one array entry per label: ``rater`` indexes ``raters``; ``choice`` indexes
    annotation.quality.agreement.CHOICES; ``left_is_a`` is 1, 0 or -1 (not recorded); ``longer`` is the sign of
    len(A) - len(B); ``time_ms`` is NaN where not recorded. Counted per annotator with bincount, so the cost is a few
    passes over the arrays plus one binomial test and one median per annotator, never a Python step per label."""
    n_raters = len(raters)
    count = np.bincount(rater, minlength=n_raters)
    if not count.sum():
        return {"annotators": {}, "project": {"longer_pick_rate": None, "median_seconds": None}}
    picked_a, decisive = choice == _A, (choice == _A) | (choice == _B)
    sided = decisive & (left_is_a >= 0)
    picked_left = np.where(picked_a, left_is_a == 1, left_is_a == 0)
    differ = decisive & (longer != 0)
    picked_longer = np.where(picked_a, longer > 0, longer < 0)
    timed = np.isfinite(time_ms)
    project_median = float(np.median(time_ms[timed])) / 1000 if timed.any() else None

    def per_rater(mask: np.ndarray, weights: np.ndarray | None = None) -> list:
        return np.bincount(rater[mask], None if weights is None else weights[mask], n_raters).tolist()

    decisive_n = per_rater(decisive)
    sided_n, left_n = per_rater(sided), per_rater(sided, picked_left)
    differ_n, longer_n = per_rater(differ), per_rater(differ, picked_longer)
    # Each annotator's times, contiguous: one sort by annotator (a stable sort of 16-bit keys is a radix sort),
    # then a slice per annotator.
    keys = rater[timed].astype(np.uint16) if n_raters <= 2**16 else rater[timed]
    times_by_rater = np.argsort(keys, kind="stable")
    times = (time_ms[timed] / 1000)[times_by_rater]
    time_bounds = np.r_[0, np.cumsum(np.bincount(rater[timed], minlength=n_raters))]

    annotators = {}
    for r in sorted(np.flatnonzero(count).tolist(), key=raters.__getitem__):
        mine = times[time_bounds[r] : time_bounds[r + 1]]
        median = float(np.median(mine)) if len(mine) else None
        fast = median is not None and (
            median < FAST_SECONDS or (project_median is not None and median < project_median / 4)
        )
        left_hits, sided_labels = int(left_n[r]), sided_n[r]
        annotators[raters[r]] = {
            "labels": int(count[r]),
            "decisive_labels": decisive_n[r],
            "left_pick_rate": left_hits / sided_labels if sided_labels else None,
            "left_pick_p_value": float(binomtest(left_hits, sided_labels, 0.5).pvalue) if sided_labels else None,
            "longer_pick_rate": longer_n[r] / differ_n[r] if differ_n[r] else None,
            "median_seconds": median,
            "p10_seconds": float(np.percentile(mine, 10)) if len(mine) else None,
            "implausibly_fast": bool(fast),
        }
    return {
        "annotators": annotators,
        "project": {"longer_pick_rate": _rate(picked_longer[differ]), "median_seconds": project_median},
    }
