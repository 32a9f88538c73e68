"""A composite's axes as text, for the page: one axis per line,

    harmless 2: rm-harmless × 1, gpt-judge × 0.5
    helpful: rm-helpful

``axis [weight]: judge [× weight], judge [× weight], ...``: the axis's weight after its name (default 1), its
scorers by judge name, each with an optional weight after ``×`` (or ``*``, or `` x ``; default 1). Blank lines and
lines starting with # are skipped. Parsing knows no judges: names are resolved, and everything validated, by
judging.stacking.services.
"""

from __future__ import annotations

import re

EXAMPLE = "harmless 2: rm-harmless × 1, gpt-judge × 0.5\nhelpful 1: rm-helpful"

_NUMBER = r"[-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?"
_AXIS = re.compile(rf"^(?P<name>.*?)(?:\s+(?P<weight>{_NUMBER}))?$")
_SCORER = re.compile(rf"^(?P<judge>.*?)\s*(?:(?:[×*]|\s[xX]\s)\s*(?P<weight>{_NUMBER}))?$")


def parse_axes_text(text: str) -> list[dict]:
    """[{"name", "weight", "scorers": [{"judge": judge name, "weight"}]}]; ValueError naming the line."""
    axes = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        head, colon, tail = line.partition(":")
        if not colon:
            raise ValueError(f"line {number}: expected 'axis weight: judge × weight, ...'")
        axis = _AXIS.match(head.strip())
        scorers = []
        for item in (part.strip() for part in tail.split(",")):
            if not item:
                continue
            scorer = _SCORER.match(item)
            scorers.append({"judge": scorer["judge"].strip(), "weight": float(scorer["weight"] or 1)})
        axes.append({"name": axis["name"].strip(), "weight": float(axis["weight"] or 1), "scorers": scorers})
    return axes


def _number(value: float) -> str:
    return f"{value:g}"


def axes_text(axes: list[dict], judge_names: dict[int, str]) -> str:
    """Stored axes (judge pks) back as text, for editing; a judge that no longer exists appears as its pk."""
    lines = []
    for axis in axes:
        scorers = ", ".join(f"{judge_names.get(s['judge'], s['judge'])} × {_number(s['weight'])}"
                            for s in axis["scorers"])  # fmt: skip
        lines.append(f"{axis['name']} {_number(axis['weight'])}: {scorers}")
    return "\n".join(lines)
