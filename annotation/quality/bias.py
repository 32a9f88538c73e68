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

FAST_SECONDS = 3.0


def _rate(hits: np.ndarray) -> float | None:
    return float(hits.mean()) if len(hits) else None


def bias_report(rows: list[tuple]) -> dict:
    """``rows``: (annotator, choice, left_is_a, len_a, len_b, time_on_item_ms) per label."""
    if not rows:
        return {"annotators": {}, "project": {"longer_pick_rate": None, "median_seconds": None}}
    names = np.array([r[0] for r in rows], dtype=object)
    choice = np.array([r[1] for r in rows], dtype=object)
    left_is_a = np.array([r[2] for r in rows], dtype=object)
    len_a = np.array([r[3] for r in rows], dtype=np.int64)
    len_b = np.array([r[4] for r in rows], dtype=np.int64)
    ms = np.array([np.nan if r[5] is None else r[5] for r in rows], dtype=float)

    decisive = (choice == "A") | (choice == "B")
    sided = decisive & (left_is_a != None)  # noqa: E711 (elementwise on an object array)
    picked_left = np.where(choice == "A", left_is_a == True, left_is_a == False)  # noqa: E712
    differ = decisive & (len_a != len_b)
    picked_longer = np.where(choice == "A", len_a > len_b, len_b > len_a)
    project_median = float(np.nanmedian(ms)) / 1000 if np.isfinite(ms).any() else None

    annotators = {}
    for name in sorted(set(names.tolist())):
        mine = names == name
        left_hits = picked_left[mine & sided]
        times = ms[mine & np.isfinite(ms)] / 1000
        median = float(np.median(times)) if len(times) else None
        fast = median is not None and (
            median < FAST_SECONDS or (project_median is not None and median < project_median / 4)
        )
        annotators[name] = {
            "labels": int(mine.sum()),
            "decisive_labels": int((mine & decisive).sum()),
            "left_pick_rate": _rate(left_hits),
            "left_pick_p_value": (
                float(binomtest(int(left_hits.sum()), len(left_hits), 0.5).pvalue) if len(left_hits) else None
            ),
            "longer_pick_rate": _rate(picked_longer[mine & differ]),
            "median_seconds": median,
            "p10_seconds": float(np.percentile(times, 10)) if len(times) else None,
            "implausibly_fast": bool(fast),
        }
    return {
        "annotators": annotators,
        "project": {"longer_pick_rate": _rate(picked_longer[differ]), "median_seconds": project_median},
    }
