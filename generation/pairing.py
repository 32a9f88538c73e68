"""Turning rated candidates into pairs: plain functions over plain values, so the preview and the write are the
same computation and the rules can be checked with hypothesis.

Strategies (RLHFlow's names where they exist): ``all`` (every two candidates of a prompt), ``best_worst`` (the
highest against the lowest score), ``best_random`` (the highest against a random lower one). Rules that hold for
every strategy: never two candidates with the same text (up to case and whitespace) or, where both are scored,
the same score; the score margin at least ``min_margin``; at most ``per_prompt`` pairs per prompt (largest margins
first); optionally only candidates of different generators; flagged candidates (empty, truncated, duplicate,
identity leak) left out unless asked for. In a scored pair, A is the higher score (the chosen response).
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field

STRATEGIES = ("all", "best_worst", "best_random")


@dataclass(frozen=True)
class Item:
    id: int
    prompt_id: int
    generator_id: int
    text: str
    score: float | None  # mean score over its ratings; None when unrated
    flagged: bool = False


@dataclass(frozen=True)
class Options:
    strategy: str = "best_worst"
    per_prompt: int = 1
    min_margin: float = 1.0
    different_generators: bool = False
    include_flagged: bool = False
    seed: int = 0
    # Whose scores rank the candidates: one rater's (a judge or a reward model: scales differ), or None for the mean
    # of every rater's.
    rater: int | None = None


@dataclass(frozen=True)
class Planned:
    prompt_id: int
    a: int  # candidate ids; A is the chosen one in a scored pair
    b: int
    margin: float | None


@dataclass
class Preview:
    pairs: list[Planned] = field(default_factory=list)
    prompts: int = 0  # prompts with at least one usable candidate
    prompts_without_pair: int = 0
    left_out_flagged: int = 0
    left_out_unscored: int = 0
    already_in_project: int = 0  # set by the service: pairs the project has already (skipped when building)


def _same_text(x: Item, y: Item) -> bool:
    return " ".join(x.text.lower().split()) == " ".join(y.text.lower().split())


def _ordered(x: Item, y: Item) -> Planned | None:
    """The pair of two candidates with the higher score as A; None where the rules forbid it."""
    if _same_text(x, y):
        return None
    if x.score is None or y.score is None:
        return Planned(x.prompt_id, *sorted((x.id, y.id)), None)
    if x.score == y.score:
        return None
    hi, lo = (x, y) if x.score > y.score else (y, x)
    return Planned(x.prompt_id, hi.id, lo.id, hi.score - lo.score)


def _allowed(p: Planned | None, by_id: dict[int, Item], options: Options) -> bool:
    if p is None:
        return False
    if options.different_generators and by_id[p.a].generator_id == by_id[p.b].generator_id:
        return False
    return p.margin is None or p.margin >= options.min_margin


def _for_prompt(items: list[Item], options: Options) -> list[Planned]:
    by_id = {i.id: i for i in items}
    if options.strategy == "all":
        found = [p for x, y in itertools.combinations(items, 2) if _allowed(p := _ordered(x, y), by_id, options)]
        found.sort(key=lambda p: (-(p.margin or 0), p.a, p.b))
        return found[: options.per_prompt]
    scored = sorted((i for i in items if i.score is not None), key=lambda i: (-i.score, i.id))
    if len(scored) < 2:
        return []
    best = scored[0]
    if options.strategy == "best_worst":
        # the lowest scores first, each worst one tried in turn until the rules allow a pair
        order = list(reversed(scored[1:]))
    else:
        order = scored[1:]
        random.Random(options.seed * 1_000_003 + best.prompt_id).shuffle(order)
    out = []
    for other in order:
        p = _ordered(best, other)
        if _allowed(p, by_id, options) and p.a == best.id:
            out.append(p)
            if len(out) >= options.per_prompt:
                break
    return out


def plan_pairs(items: list[Item], options: Options) -> Preview:
    """The pairs the options would build from these candidates, and what was left out."""
    if options.strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {options.strategy!r}; use one of {', '.join(STRATEGIES)}")
    preview = Preview()
    by_prompt: dict[int, list[Item]] = {}
    for item in items:
        if item.flagged and not options.include_flagged:
            preview.left_out_flagged += 1
            continue
        if item.score is None and options.strategy != "all":
            preview.left_out_unscored += 1
            continue
        by_prompt.setdefault(item.prompt_id, []).append(item)
    for prompt_id in sorted(by_prompt):
        found = _for_prompt(by_prompt[prompt_id], options)
        preview.prompts += 1
        preview.prompts_without_pair += not found
        preview.pairs += found
    return preview


def kto_weights(desirable: int, undesirable: int) -> tuple[float, float]:
    """(desirable_weight, undesirable_weight) for TRL's KTOTrainer: the KTO paper keeps
    desirable_weight x desirable / (undesirable_weight x undesirable) between 1 and 4/3, so the minority side is
    weighted up (1 inside that range)."""
    if not desirable or not undesirable:
        return 1.0, 1.0
    ratio = desirable / undesirable
    up = lambda x: math.ceil(x * 10_000) / 10_000  # noqa: E731 - rounded up, so the ratio stays inside the range
    if ratio < 1:
        return up(undesirable / desirable), 1.0
    if ratio > 4 / 3:
        return 1.0, up(desirable / (undesirable * 4 / 3))
    return 1.0, 1.0
