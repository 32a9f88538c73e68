"""A composite's arithmetic, pure numpy (no Django): scorers' margins -> normalised values -> axes -> composite.

Per pair:

- each scorer's value is its margin normalised over every pair of the project it judged
  (judging.stacking.normalise.normalise: symmetric z-score or rank, so the sign of the margin is kept);
- an axis is the weighted mean of the values of its scorers that judged the pair: the weights are renormalised
  over the scorers present, so a scorer that has not judged a pair neither counts as 0 nor drags the axis
  towards 0. No scorer of the axis on the pair: the axis is missing there;
- the composite is the weighted mean of the axes present, renormalised the same way. A pair no scorer judged
  gets no composite at all;
- the winner is the composite's sign (``winner_of_value``: A above 0, B below, tie within TIE_EPSILON of 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

from .normalise import normalise

# Below this a composite is a tie: float sums of opposite preferences need not cancel to exactly 0.
TIE_EPSILON = 1e-9


def winner_of_value(value: float) -> str:
    """A composite's winner: its sign."""
    return "A" if value > TIE_EPSILON else "B" if value < -TIE_EPSILON else "tie"


@dataclass(frozen=True)
class Margins:
    """One scorer's current margins on the project: pair ids and score(A) - score(B), aligned."""

    pair_ids: np.ndarray  # int64
    margins: np.ndarray  # float64


@dataclass
class Combined:
    pair_ids: np.ndarray  # int64, sorted: every pair at least one scorer judged
    value: np.ndarray  # float64: the composite
    axes: dict[str, np.ndarray]  # axis name -> float64 per pair, NaN where the axis is missing
    normalised: dict[int, Margins]  # judge pk -> its normalised values (as given, before weighting)


def combine(axes: list[dict], margins: dict[int, Margins], normalisation: str) -> Combined:
    """``axes`` as stored on models.Composite (judge pks); ``margins`` per judge pk (a judge with none may be
    absent)."""
    normalised = {judge: Margins(m.pair_ids, normalise(normalisation, m.margins))
                  for judge, m in margins.items() if len(m.pair_ids)}  # fmt: skip
    used = {s["judge"] for axis in axes for s in axis["scorers"]}
    parts = [normalised[j].pair_ids for j in used if j in normalised]
    pair_ids = np.unique(np.concatenate(parts)) if parts else np.empty(0, dtype=np.int64)
    n = len(pair_ids)
    axis_values: dict[str, np.ndarray] = {}
    total, total_weight = np.zeros(n), np.zeros(n)
    for axis in axes:
        num, den = np.zeros(n), np.zeros(n)
        for scorer in axis["scorers"]:
            values = normalised.get(scorer["judge"])
            if values is None:
                continue
            pos = np.searchsorted(pair_ids, values.pair_ids)  # every id is in pair_ids: it is their union
            num[pos] += scorer["weight"] * values.margins
            den[pos] += scorer["weight"]
        present = den > 0
        value = np.full(n, np.nan)
        value[present] = num[present] / den[present]
        axis_values[axis["name"]] = value
        total[present] += axis["weight"] * value[present]
        total_weight[present] += axis["weight"]
    # every pair has a scorer, so an axis, present: total_weight > 0 throughout
    return Combined(pair_ids=pair_ids, value=total / np.where(total_weight > 0, total_weight, 1.0), axes=axis_values,
                    normalised=normalised)  # fmt: skip


def _moments(values: np.ndarray) -> dict:
    return {"pairs": len(values), "mean": float(values.mean()) if len(values) else None,
            "sd": float(values.std()) if len(values) else None}  # fmt: skip


def _spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    """Spearman's rho (Pearson's r of average ranks); None under 3 pairs or when either side is constant."""
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    rx, ry = rankdata(x), rankdata(y)
    return float(np.corrcoef(rx, ry)[0, 1])


def summarise(axes: list[dict], margins: dict[int, Margins], combined: Combined) -> dict:
    """What a compute used and found, stored as Composite.stats: per scorer its pairs and the mean and population sd
    of its raw margins (before normalisation), per axis the pairs it covers, and Spearman's rho between every two
    axes over the pairs both cover."""
    scorers = {str(judge): _moments(m.margins) for judge, m in margins.items()}
    for judge in {s["judge"] for axis in axes for s in axis["scorers"]} - set(margins):
        scorers[str(judge)] = _moments(np.empty(0))
    present = {name: ~np.isnan(v) for name, v in combined.axes.items()}
    names = list(combined.axes)
    correlations = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            both = present[a] & present[b]
            correlations.append({"axes": [a, b], "pairs": int(both.sum()),
                                 "spearman": _spearman(combined.axes[a][both], combined.axes[b][both])})  # fmt: skip
    return {
        "pairs": len(combined.pair_ids),
        "winners": {
            "A": int((combined.value > TIE_EPSILON).sum()),
            "B": int((combined.value < -TIE_EPSILON).sum()),
            "tie": int((np.abs(combined.value) <= TIE_EPSILON).sum()),
        },  # fmt: skip
        "scorers": scorers,
        "axes": {name: int(p.sum()) for name, p in present.items()},
        "correlations": correlations,
    }
