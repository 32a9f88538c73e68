"""Curation: from each pair's human consensus and judge aggregate to (prompt, chosen, rejected) rows.

The steps run in this fixed order; each only removes rows, and the funnel records how many each removed and why:

1. ``preference``  the recipe's source gives the pair a preference, or the pair is dropped:
   - ``human``: the human majority (annotation.selectors.pair_consensus; paused annotators already left out);
   - ``judge``: the judges' aggregate (judging.selectors.pair_judge_aggregate);
   - ``human_else_judge``: human where the pair has human labels, else judge;
   - ``agree``: only pairs where both exist, are decisive and name the same winner.
   Calibration pairs use their expected answer when ``include_gold`` is on.
2. ``gold``  calibration pairs are dropped unless ``include_gold``.
3. ``human_agreement``  human-sourced pairs whose share of labels in the majority is below ``min_human_agreement``.
4. ``vote_margin``  human-sourced pairs with |votes for A − votes for B| / labels below ``min_vote_margin``.
5. ``judge_margin``  judge-sourced pairs with |mean score difference| below ``min_judge_margin`` (scores 1–10).
6. ``judge_inconsistent``  with ``drop_judge_inconsistent``, judge-sourced pairs where any judge flipped with the
   order.
7. ``ties``  no-preference pairs are dropped. For KTO with ``both_bad_as_undesirable``, a no-preference pair whose
   labels say "both bad" more often than "tie" is kept and exported as two undesirable examples.
8. ``same_responses``  pairs whose two responses are near-identical (cosine similarity of character 3-gram counts
   ≥ ``response_similarity``): nothing to learn from them.
9. ``duplicate_pairs``  among pairs with the same or near-same prompt (exact after normalisation, or MinHash-estimated
   Jaccard similarity of character 5-grams ≥ ``prompt_similarity``), a pair whose chosen and rejected responses are
   both near-identical to those of a pair already kept. Kept: the larger |margin|, then the lower pair id.
10. ``per_prompt_cap``  at most ``max_pairs_per_prompt`` per prompt group, the same order deciding.
11. ``length_balance``  with ``balance_length``, rows are dropped at random (seeded) from the larger of "chosen is
    longer" and "chosen is shorter" until the two are equal. The share is reported either way.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import asdict, dataclass, field, fields

import numpy as np
from sklearn.feature_extraction.text import HashingVectorizer

from judging.prompts import render_conversation

from .near_duplicates import near_duplicate_groups

SOURCES = ("human", "judge", "human_else_judge", "agree")
STEPS = ("preference", "gold", "human_agreement", "vote_margin", "judge_margin", "judge_inconsistent", "ties",
         "same_responses", "duplicate_pairs", "per_prompt_cap", "length_balance")  # fmt: skip


@dataclass(frozen=True)
class RecipeConfig:
    source: str = "human"
    include_gold: bool = False
    min_human_agreement: float = 0.0
    min_vote_margin: float = 0.0
    min_judge_margin: float = 0.0
    drop_judge_inconsistent: bool = True
    both_bad_as_undesirable: bool = False
    response_similarity: float = 0.98
    prompt_similarity: float = 0.95
    max_pairs_per_prompt: int | None = None
    balance_length: bool = False
    seed: int = 0

    @classmethod
    def from_dict(cls, data: dict) -> RecipeConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown recipe settings: {', '.join(unknown)}")
        config = cls(**data)
        config.validate()
        return config

    def validate(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}")
        for name in ("min_human_agreement", "min_vote_margin", "response_similarity", "prompt_similarity"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if not 0.0 <= self.min_judge_margin <= 9.0:
            raise ValueError("min_judge_margin must be between 0 and 9 (scores are 1-10)")
        if self.max_pairs_per_prompt is not None and self.max_pairs_per_prompt < 1:
            raise ValueError("max_pairs_per_prompt must be at least 1")

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Candidate:
    """A pair with everything curation needs (built by training.selectors.curation_candidates)."""

    pair_id: int
    prompt: list[dict]
    response_a: str
    response_b: str
    gold: str = ""
    human: dict | None = None  # pair_consensus row, plus both_bad / tie vote counts
    judge: dict | None = None  # pair_judge_aggregate row


@dataclass
class Row:
    pair_id: int
    prompt: list[dict]
    chosen: str
    rejected: str
    margin: float  # strength of the preference in [0, 1]
    source: str  # human | judge | gold
    both_bad: bool = False  # KTO: both responses undesirable
    group: str = ""  # prompt group (near-same prompts share one)


@dataclass
class Funnel:
    steps: list[dict] = field(default_factory=list)

    def record(self, step: str, before: int, dropped: dict[str, int]) -> None:
        removed = sum(dropped.values())
        self.steps.append({"step": step, "rows_in": before, "removed": removed, "rows_out": before - removed,
                           "reasons": dropped})  # fmt: skip


def _preference(c: Candidate, config: RecipeConfig) -> tuple[str, float, str] | None:
    """(winner A|B|none, margin in [0, 1], source) or None when the source has nothing for this pair."""
    if c.gold:
        return ("none" if c.gold in ("tie", "both_bad") else c.gold), 1.0, "gold"
    human = c.human if c.human and c.human.get("labels") else None
    judge = c.judge if c.judge and c.judge.get("judges") else None
    if human is not None:
        h = {"A": "A", "B": "B", "no_preference": "none"}.get(human["majority"])
        h_margin = abs(human["vote_margin"])
    if judge is not None:
        j = {"A": "A", "B": "B", "tie": "none"}[judge["winner"]]
        j_margin = min(abs(judge["mean_margin"]) / 9.0, 1.0)
    if config.source == "human" or (config.source == "human_else_judge" and human is not None):
        return (h, h_margin, "human") if human is not None and h is not None else None
    if config.source in ("judge", "human_else_judge"):
        return (j, j_margin, "judge") if judge is not None else None
    # agree
    if human is None or judge is None or h not in ("A", "B") or h != j:
        return None
    return h, min(h_margin, j_margin), "agree"


_SPACE = re.compile(r"\s+")


def _normalise(text: str) -> str:
    return _SPACE.sub(" ", text.strip().lower())


_CHARS = HashingVectorizer(analyzer="char_wb", ngram_range=(3, 3), n_features=2**18, alternate_sign=False)
_BATCH = 5_000  # texts vectorised at a time: memory stays flat however many rows there are


def _rowwise_cosine(a: list[str], b: list[str]) -> np.ndarray:
    """Cosine similarity of character 3-gram counts, a[i] against b[i]."""
    out = [np.zeros(0)]
    for start in range(0, len(a), _BATCH):
        x, y = _CHARS.transform(a[start : start + _BATCH]), _CHARS.transform(b[start : start + _BATCH])
        out.append(np.asarray(x.multiply(y).sum(axis=1)).ravel())  # rows are l2-normalised
    return np.concatenate(out)


def prompt_groups(prompts: list[str], threshold: float) -> list[str]:
    """A group key per prompt: exact duplicates after normalisation always share one; near-same prompts (estimated
    Jaccard similarity of character 5-grams ≥ threshold, training.near_duplicates) are joined too."""
    normalised = [_normalise(p) for p in prompts]
    distinct = sorted(set(normalised))
    index = {p: i for i, p in enumerate(distinct)}
    labels = near_duplicate_groups(distinct, threshold) if threshold < 1.0 else np.arange(len(distinct))
    # the key of a group is the hash of its smallest normalised prompt: stable across runs
    return [hashlib.sha256(distinct[labels[index[p]]].encode()).hexdigest()[:16] for p in normalised]


def _chosen_longer(row: Row) -> int:
    return (len(row.chosen) > len(row.rejected)) - (len(row.chosen) < len(row.rejected))


def curate(candidates: list[Candidate], config: RecipeConfig, *, kto: bool = False) -> tuple[list[Row], Funnel]:
    """Apply the steps in order (see the module docstring). Rows come out in pair id order."""
    funnel = Funnel()
    candidates = sorted(candidates, key=lambda c: c.pair_id)
    rows: list[Row] = []
    dropped: dict[str, int] = {}
    meta: dict[int, tuple[Candidate, str]] = {}
    for c in candidates:
        pref = _preference(c, config) if (config.include_gold or not c.gold) else ("gold", 0.0, "gold")
        if pref is None:
            dropped["no preference from the source"] = dropped.get("no preference from the source", 0) + 1
            continue
        winner, margin, source = pref
        chosen, rejected = (c.response_a, c.response_b) if winner != "B" else (c.response_b, c.response_a)
        rows.append(Row(c.pair_id, c.prompt, chosen, rejected, margin, source))
        meta[c.pair_id] = (c, winner)
    funnel.record("preference", len(candidates), dropped)

    def step(name: str, drop) -> None:
        nonlocal rows
        before, reasons, kept = len(rows), {}, []
        for row in rows:
            reason = drop(row)
            if reason:
                reasons[reason] = reasons.get(reason, 0) + 1
            else:
                kept.append(row)
        rows = kept
        funnel.record(name, before, reasons)

    step("gold", lambda r: "calibration pair" if r.source == "gold" and not config.include_gold else None)
    step("human_agreement", lambda r: "human agreement below the minimum" if r.source == "human"
         and meta[r.pair_id][0].human["agreement"] < config.min_human_agreement else None)  # fmt: skip
    step("vote_margin", lambda r: "vote margin below the minimum" if r.source == "human"
         and r.margin < config.min_vote_margin else None)  # fmt: skip
    step("judge_margin", lambda r: "judge margin below the minimum" if r.source in ("judge", "agree")
         and abs(meta[r.pair_id][0].judge["mean_margin"]) < config.min_judge_margin else None)  # fmt: skip
    step("judge_inconsistent", lambda r: "a judge flipped with the order" if config.drop_judge_inconsistent
         and r.source in ("judge", "agree")
         and meta[r.pair_id][0].judge["consistent_judges"] < meta[r.pair_id][0].judge["judges"] else None)  # fmt: skip

    def tie(row: Row) -> str | None:
        c, winner = meta[row.pair_id]
        if winner != "none":
            return None
        human = c.human or {}
        if kto and config.both_bad_as_undesirable and human.get("both_bad", 0) > human.get("tie", 0):
            row.both_bad = True
            return None
        return "no preference (tie or both bad)"

    step("ties", tie)
    similar = _rowwise_cosine([r.chosen for r in rows], [r.rejected for r in rows])
    same = {r.pair_id for r, s in zip(rows, similar, strict=True) if s >= config.response_similarity}
    step("same_responses", lambda r: "responses near-identical" if r.pair_id in same else None)

    keys = prompt_groups([render_conversation(r.prompt) for r in rows], config.prompt_similarity)
    for row, key in zip(rows, keys, strict=True):
        row.group = key
    order = sorted(rows, key=lambda r: (-r.margin, r.pair_id))
    kept_by_group: dict[str, list[Row]] = {}
    duplicates: set[int] = set()
    for row in order:
        for other in kept_by_group.get(row.group, []):
            if _rowwise_cosine([row.chosen, row.rejected], [other.chosen, other.rejected]).min() >= (
                config.response_similarity
            ):
                duplicates.add(row.pair_id)
                break
        else:
            kept_by_group.setdefault(row.group, []).append(row)
    step("duplicate_pairs", lambda r: "near-duplicate of a kept pair" if r.pair_id in duplicates else None)

    over_cap: set[int] = set()
    if config.max_pairs_per_prompt:
        counts: dict[str, int] = {}
        for row in sorted(rows, key=lambda r: (-r.margin, r.pair_id)):
            counts[row.group] = counts.get(row.group, 0) + 1
            if counts[row.group] > config.max_pairs_per_prompt:
                over_cap.add(row.pair_id)
    step("per_prompt_cap", lambda r: "over the per-prompt cap" if r.pair_id in over_cap else None)

    surplus: set[int] = set()
    longer = [r for r in rows if _chosen_longer(r) > 0 and not r.both_bad]
    shorter = [r for r in rows if _chosen_longer(r) < 0 and not r.both_bad]
    if config.balance_length and len(longer) != len(shorter):
        big = longer if len(longer) > len(shorter) else shorter
        rng = random.Random(config.seed)
        surplus = {r.pair_id for r in rng.sample(big, abs(len(longer) - len(shorter)))}
    step("length_balance", lambda r: "length balance" if r.pair_id in surplus else None)
    return rows, funnel


def chosen_longer_share(rows: list[Row]) -> float | None:
    decisive = [r for r in rows if not r.both_bad and _chosen_longer(r) != 0]
    return sum(_chosen_longer(r) > 0 for r in decisive) / len(decisive) if decisive else None
