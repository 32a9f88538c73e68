"""A sampling plan: temperatures, samples per temperature, top_p, max_tokens, seed and an optional system prompt.
``plan_clean`` validates one (errors name the field); ``slots`` lists the sampling slots it defines, each with the
key that identifies it (a candidate exists at most once per prompt, generator and slot key) and its seed."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass

from django.core.exceptions import ValidationError

DEFAULT_PLAN = {
    "temperatures": [0.3, 0.5, 0.7, 1.0],
    "samples": 1,
    "top_p": 1.0,
    "max_tokens": 512,
    "seed": 0,
    "system": "",
}  # fmt: skip  (seed 003 §18.4.3's temperatures)
MAX_SLOTS = 64


@dataclass(frozen=True)
class Slot:
    temperature: float
    sample: int
    seed: int | None
    key: str


def _number(plan: dict, field: str, lo: float, hi: float, *, integer: bool = False):
    value = plan.get(field, DEFAULT_PLAN[field])
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and integer:
        ok = float(value).is_integer()
    if not ok or not lo <= value <= hi:
        kind = "an integer" if integer else "a number"
        raise ValidationError({field: f"must be {kind} from {lo:g} to {hi:g}, not {value!r}"[:200]})
    return int(value) if integer else float(value)


def plan_clean(plan: dict) -> dict:
    """The plan with defaults filled in; ValidationError naming the field otherwise."""
    if not isinstance(plan, dict):
        raise ValidationError("The sampling plan must be an object.")
    unknown = set(plan) - set(DEFAULT_PLAN)
    if unknown:
        raise ValidationError(f"Unknown sampling plan fields: {', '.join(sorted(unknown))}.")
    temperatures = plan.get("temperatures", DEFAULT_PLAN["temperatures"])
    if not isinstance(temperatures, list) or not temperatures:
        raise ValidationError({"temperatures": "must be a non-empty list of numbers from 0 to 2"})
    clean_t = []
    for t in temperatures:
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or not 0 <= t <= 2:
            raise ValidationError({"temperatures": f"must be numbers from 0 to 2, not {t!r}"[:200]})
        if float(t) in clean_t:
            raise ValidationError({"temperatures": f"lists {t} twice; use samples for several per temperature"})
        clean_t.append(float(t))
    cleaned = {
        "temperatures": clean_t,
        "samples": _number(plan, "samples", 1, 16, integer=True),
        "top_p": _number(plan, "top_p", 0.01, 1.0),
        "max_tokens": _number(plan, "max_tokens", 1, 32768, integer=True),
        "seed": _number(plan, "seed", 0, 2**31 - 1, integer=True),
        "system": plan.get("system", "") or "",
    }
    if not isinstance(cleaned["system"], str) or len(cleaned["system"]) > 20000:
        raise ValidationError({"system": "must be a string of at most 20,000 characters"})
    if len(clean_t) * cleaned["samples"] > MAX_SLOTS:
        raise ValidationError({"samples": f"temperatures x samples must be at most {MAX_SLOTS} per prompt"})
    return cleaned


def slots(plan: dict) -> list[Slot]:
    """The plan's sampling slots. Each sample gets its own seed (so two samples at one temperature differ, and the
    same slot asks the same thing again: a cached reply answers it)."""
    out = []
    for temperature in plan["temperatures"]:
        for sample in range(plan["samples"]):
            seed = (plan["seed"] + 1_000_003 * sample + round(temperature * 1000)) % 2**31
            blob = json.dumps([temperature, sample, seed, plan["top_p"], plan["max_tokens"], plan["system"]])
            out.append(Slot(temperature, sample, seed, hashlib.sha256(blob.encode()).hexdigest()))
    return out


def messages_for(prompt_messages: list[dict], plan: dict) -> list[dict]:
    """The request's messages: the plan's system prompt first, unless the prompt brings its own."""
    if plan["system"] and not any(m["role"] == "system" for m in prompt_messages):
        return [{"role": "system", "content": plan["system"]}, *prompt_messages]
    return list(prompt_messages)
