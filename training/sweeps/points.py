"""The runs of a sweep: axes (JobSpec fields and the values to try) to points (one settings dict per run).

Axes are written one per line, ``field: v1, v2, ...``, or given as a dict of lists (API). A grid takes every
combination; random mode draws N distinct points, where an axis may also be a range ``low..high`` (drawn
log-uniformly when both ends are positive and an order of magnitude or more apart, as learning rates are, else
uniformly). Values are read by the field's type, so ``lora: no`` and ``beta: empty`` mean what they say.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import fields

from ..jobs.spec import JobSpec

# Seed 003's DPOSweepConfig defaults (§18.4.4); the learning rates are for full fine-tuning (LoRA takes ~10x).
SEED_003 = {"beta": [0.05, 0.1, 0.2, 0.5], "learning_rate": [1e-7, 5e-7, 1e-6], "warmup_ratio": [0.05, 0.1]}
NOT_SWEPT = ("base_model",)  # every run of a sweep trains the same model on the same export
_TYPES = {f.name: f.type for f in fields(JobSpec)}
_BOOL = {"yes": True, "true": True, "on": True, "1": True, "no": False, "false": False, "off": False, "0": False}


class Range:
    """``low..high`` on an axis (random mode only)."""

    def __init__(self, low: float, high: float):
        self.low, self.high = min(low, high), max(low, high)

    def draw(self, rng: random.Random) -> float:
        if self.low > 0 and self.high / self.low >= 10:
            return float(f"{math.exp(rng.uniform(math.log(self.low), math.log(self.high))):.3g}")
        return float(f"{rng.uniform(self.low, self.high):.4g}")

    def __repr__(self) -> str:
        return f"{self.low:g}..{self.high:g}"


def _value(field: str, raw):
    kind = str(_TYPES[field])
    text = str(raw).strip() if not isinstance(raw, (int, float, bool)) or raw is None else raw
    if isinstance(text, str) and text.lower() in ("", "empty", "none", "null"):
        if "None" not in kind:
            raise ValueError(f"{field}: this setting cannot be empty")
        return None
    if kind == "bool":
        if isinstance(text, bool):
            return text
        if str(text).lower() not in _BOOL:
            raise ValueError(f"{field}: {raw!r} is not yes or no")
        return _BOOL[str(text).lower()]
    try:
        if kind.startswith("int"):
            number = float(text)
            if number != int(number):
                raise ValueError
            return int(number)
        if kind.startswith("float"):
            return float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{field}: {raw!r} is not a number") from None
    return str(text)


def parse_axes(axes) -> dict[str, list]:
    """{field: [values]} from the form's text or the API's dict; every error names the line (or field)."""
    if isinstance(axes, str):
        parsed: dict[str, list] = {}
        for number, line in enumerate(axes.splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            field, sep, values = line.partition(":")
            if not sep:
                raise ValueError(f"axes line {number}: write it as field: value, value, ...")
            field = field.strip()
            if field in parsed:
                raise ValueError(f"axes line {number}: {field} is given twice")
            try:
                parsed[field] = _axis(field, [v.strip() for v in values.split(",") if v.strip()])
            except ValueError as exc:
                raise ValueError(f"axes line {number}: {exc}") from None
        axes = parsed
    elif isinstance(axes, dict):
        axes = {str(k): _axis(str(k), v if isinstance(v, list) else [v]) for k, v in axes.items()}
    else:
        raise ValueError("axes: give one line per setting (field: values) or an object of lists")
    if not axes:
        raise ValueError("axes: name at least one setting to vary")
    return axes


def parse_settings(text: str) -> dict:
    """Settings every run shares, one ``field: value`` per line (the form's text box)."""
    out = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        field, sep, value = line.partition(":")
        field = field.strip()
        if not sep or field not in _TYPES:
            raise ValueError(f"settings line {number}: write a training setting as field: value")
        try:
            out[field] = _value(field, value)
        except ValueError as exc:
            raise ValueError(f"settings line {number}: {exc}") from None
    return out


def _axis(field: str, values: list) -> list:
    if field not in _TYPES:
        raise ValueError(f"{field}: not a training setting (see training/jobs/spec.py)")
    if field in NOT_SWEPT:
        raise ValueError(f"{field}: every run of a sweep trains the same model; start another sweep for another")
    if not values:
        raise ValueError(f"{field}: give at least one value")
    out = []
    for raw in values:
        if isinstance(raw, str) and ".." in raw:
            low, _, high = raw.partition("..")
            if not str(_TYPES[field]).startswith(("float", "int")):
                raise ValueError(f"{field}: a range needs a numeric setting")
            try:
                out.append(Range(float(low), float(high)))
            except ValueError:
                raise ValueError(f"{field}: {raw.strip()!r} is not a range low..high") from None
        else:
            out.append(_value(field, raw))
    if len({repr(v) for v in out}) != len(out):
        raise ValueError(f"{field}: a value is repeated")
    return out


def axes_as_json(axes: dict[str, list]) -> dict[str, list]:
    """What the sweep stores: ranges as their "low..high" text."""
    return {k: [repr(v) if isinstance(v, Range) else v for v in values] for k, values in axes.items()}


def sweep_points(axes: dict[str, list], *, mode: str, draws: int, seed: int, max_runs: int) -> list[dict]:
    """The points to run, in order; errors say how far over the run cap a grid goes."""
    has_range = any(isinstance(v, Range) for values in axes.values() for v in values)
    if mode == "grid":
        if has_range:
            raise ValueError("axes: ranges (low..high) are for random mode; list the grid's values")
        size = math.prod(len(v) for v in axes.values())
        if size > max_runs:
            raise ValueError(f"max_runs: the grid has {size} points, more than the cap of {max_runs}; raise the "
                             "cap, drop values, or switch to random draws")  # fmt: skip
        return [dict(zip(axes, combo, strict=True)) for combo in itertools.product(*axes.values())]
    if draws < 1:
        raise ValueError("draws: random mode needs at least one draw")
    if draws > max_runs:
        raise ValueError(f"draws: {draws} draws are more than the cap of {max_runs} runs")
    if not has_range and draws > math.prod(len(v) for v in axes.values()):
        raise ValueError(f"draws: only {math.prod(len(v) for v in axes.values())} distinct points exist")
    rng, points, seen = random.Random(seed), [], set()
    for _ in range(draws * 100):
        point = {k: (v.draw(rng) if isinstance(v, Range) else v) for k, v in
                 ((k, rng.choice(values)) for k, values in axes.items())}  # fmt: skip
        key = repr(sorted(point.items()))
        if key not in seen:
            seen.add(key)
            points.append(point)
        if len(points) == draws:
            return points
    raise ValueError(f"draws: could not draw {draws} distinct points from these axes")


def point_label(point: dict) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in point.items())
