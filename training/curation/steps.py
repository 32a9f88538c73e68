"""Curation: from each pair's human consensus and judge aggregate to (prompt, chosen, rejected) rows.

The steps run in this fixed order; each only removes rows, and the funnel records how many each removed and why:

1. ``preference``  the recipe's source gives the pair a preference, or the pair is dropped:
   - ``human``: the human majority (annotation.selectors.pair_consensus; paused annotators already left out);
   - ``judge``: the judges' aggregate (judging.selectors.pair_judge_aggregate);
   - ``human_else_judge``: human where the pair has human labels, else judge;
   - ``agree``: only pairs where both exist, are decisive and name the same winner;
   - ``scores``: pairs built from rated candidates (generation's best-vs-worst), the higher-rated one chosen, as
     RLHFlow's iterative DPO lets its reward model pick (the margin is the score difference / 9);
   - ``human_else_scores``: human where the pair has human labels, else scores;
   - ``composite``: the recipe's ``composite`` (judging.stacking: scorers stacked per axis), its stored score's sign
     the winner; the margin is the share of the composite's scored pairs with a weaker |score| (so z-score and rank
     composites alike give margins in (0, 1]);
   - ``human_else_composite``: human where the pair has human labels, else the composite.
   Calibration pairs use their expected answer when ``include_gold`` is on. With a ``criterion``, "human" is the
   majority of that criterion's choices (Label.criteria) rather than the overall one: per-axis preference data.
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

``near_duplicates`` (on by default) switches the text comparisons: off, steps 8 and 9 remove nothing and prompt
groups are exact (after normalisation) only, so no response text is read during curation.

Columnar: pairs come in as numpy arrays (``Candidates``, one entry per pair) and rows go out as arrays
(``Curated``); steps 1–7, 10 and 11 are masks over them. Texts are read only by the text steps
(training/curation/similarity.py), in batches through the candidates' text reader, and by the writers.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields, replace

import numpy as np

from . import similarity
from .recipe import RecipeConfig

STEPS = ("preference", "gold", "human_agreement", "vote_margin", "judge_margin", "judge_inconsistent", "ties",
         "same_responses", "duplicate_pairs", "per_prompt_cap", "length_balance")  # fmt: skip

# Codes in the arrays. Winners and human majorities: A, B, or no preference; LEVEL is a human vote with no majority.
A, B, NONE, LEVEL = 0, 1, 2, -1
GOLD_CHOICES = ("A", "B", "tie", "both_bad")  # Pair.gold as an index into this; NO_GOLD on a normal pair
NO_GOLD = -1
ROW_SOURCES = ("human", "judge", "gold", "agree", "scores", "composite")  # Curated.source indexes this
HUMAN, JUDGE, GOLD, AGREE, SCORES, COMPOSITE = range(6)

# (sorted pair ids, fields among "prompt", "prompt_text", "response_a", "response_b") -> batches of (pair ids,
# {field: values}) in pair id order; a prompt is its message list, a prompt_text its render_conversation.
TextReader = Callable[[np.ndarray, tuple[str, ...]], Iterator[tuple[np.ndarray, dict[str, list]]]]


@dataclass(eq=False)
class Candidates:
    """Every pair of a project as columns, one entry per pair, sorted by pair id (built by
    training.curation.candidates.curation_candidates). Human figures are those of annotation.selectors.pair_consensus
    (``human_labels`` 0: the pair has no consensus); ``human_tie`` / ``human_both_bad`` count those votes.
    Judge figures are those of judging.selectors.pair_judge_aggregate (``judges`` 0: not judged)."""

    pair_id: np.ndarray  # int64
    gold: np.ndarray  # int8: index into GOLD_CHOICES, NO_GOLD
    human_labels: np.ndarray  # int32
    human_majority: np.ndarray  # int8: A, B, NONE (no preference) or LEVEL
    human_vote_margin: np.ndarray  # float64: (votes A - votes B) / labels
    human_agreement: np.ndarray  # float64: share of labels in the majority category
    human_tie: np.ndarray  # int32
    human_both_bad: np.ndarray  # int32
    judges: np.ndarray  # int32
    judge_winner: np.ndarray  # int8: A, B or NONE (tie)
    judge_mean_margin: np.ndarray  # float64
    judge_consistent: np.ndarray  # int32
    chars_a: np.ndarray  # int64: length of response A in characters
    chars_b: np.ndarray  # int64
    texts: TextReader
    # float64: the rated candidates' score difference (chosen is A) of a pair built from candidates; 0 elsewhere
    score_margin: np.ndarray | None = None
    # float64: the recipe composite's preference as a signed strength in [-1, 1] (> 0: A; 0: a tie); NaN where the
    # composite has no score (training.curation.candidates._composite_margins)
    composite_margin: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.pair_id)

    def take(self, index: np.ndarray) -> Candidates:
        return replace(self, **{f.name: getattr(self, f.name)[index] for f in fields(self)
                                if f.name != "texts" and getattr(self, f.name) is not None})  # fmt: skip


@dataclass(eq=False)
class Curated:
    """The rows curation kept, as columns in pair id order."""

    pair_id: np.ndarray  # int64
    swap: np.ndarray  # bool: chosen is response B (rejected is A)
    margin: np.ndarray  # float64: strength of the preference in [0, 1]
    source: np.ndarray  # int8: index into ROW_SOURCES
    both_bad: np.ndarray  # bool: KTO, both responses undesirable
    group: np.ndarray  # uint64: prompt group (near-same prompts share one)
    chosen_chars: np.ndarray  # int64
    rejected_chars: np.ndarray  # int64
    texts: TextReader

    def __len__(self) -> int:
        return len(self.pair_id)

    def sources(self) -> dict[str, int]:
        """Rows per preference source, in order of first appearance."""
        codes, first, counts = np.unique(self.source, return_index=True, return_counts=True)
        return {ROW_SOURCES[codes[i]]: int(counts[i]) for i in np.argsort(first)}

    def margin_histogram(self) -> list[int]:
        """Rows per margin decile, [0, 0.1) ... [0.9, 1]."""
        return np.bincount(np.minimum((self.margin * 10).astype(np.int64), 9), minlength=10).tolist()


@dataclass
class Funnel:
    steps: list[dict] = field(default_factory=list)

    def record(self, step: str, before: int, dropped: dict[str, int]) -> None:
        removed = sum(dropped.values())
        self.steps.append({"step": step, "rows_in": before, "removed": removed, "rows_out": before - removed,
                           "reasons": dropped})  # fmt: skip


def _preference(c: Candidates, config: RecipeConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per pair: (has a preference, winner A|B|NONE, margin in [0, 1], source)."""
    n = len(c)
    has_h = c.human_labels > 0
    has_j = c.judges > 0
    h_margin = np.abs(c.human_vote_margin)
    j_margin = np.minimum(np.abs(c.judge_mean_margin) / 9.0, 1.0)
    h_ok = has_h & (c.human_majority != LEVEL)
    if config.source == "human":
        ok, winner, margin, source = h_ok, c.human_majority, h_margin, np.full(n, HUMAN)
    elif config.source == "judge":
        ok, winner, margin, source = has_j, c.judge_winner, j_margin, np.full(n, JUDGE)
    elif config.source == "human_else_judge":  # a pair with human labels never falls back to the judges
        ok = np.where(has_h, h_ok, has_j)
        winner = np.where(has_h, c.human_majority, c.judge_winner)
        margin = np.where(has_h, h_margin, j_margin)
        source = np.where(has_h, HUMAN, JUDGE)
    elif config.source in ("scores", "human_else_scores"):
        scored = c.score_margin if c.score_margin is not None else np.zeros(n)
        has_s, s_margin = scored > 0, np.minimum(scored / 9.0, 1.0)
        if config.source == "scores":
            ok, winner, margin, source = has_s, np.full(n, A), s_margin, np.full(n, SCORES)
        else:
            ok = np.where(has_h, h_ok, has_s)
            winner = np.where(has_h, c.human_majority, A)
            margin = np.where(has_h, h_margin, s_margin)
            source = np.where(has_h, HUMAN, SCORES)
    elif config.source in ("composite", "human_else_composite"):
        composite = c.composite_margin if c.composite_margin is not None else np.full(n, np.nan)
        has_c = ~np.isnan(composite)
        c_winner = np.where(composite > 0, A, np.where(composite < 0, B, NONE))
        c_margin = np.abs(np.nan_to_num(composite))
        if config.source == "composite":
            ok, winner, margin, source = has_c, c_winner, c_margin, np.full(n, COMPOSITE)
        else:
            ok = np.where(has_h, h_ok, has_c)
            winner = np.where(has_h, c.human_majority, c_winner)
            margin = np.where(has_h, h_margin, c_margin)
            source = np.where(has_h, HUMAN, COMPOSITE)
    else:  # agree
        ok = h_ok & has_j & (c.human_majority != NONE) & (c.human_majority == c.judge_winner)
        winner, margin, source = c.human_majority, np.minimum(h_margin, j_margin), np.full(n, AGREE)
    gold = c.gold != NO_GOLD
    if config.include_gold:  # the expected answer; "tie" and "both bad" are no preference
        gold_winner = np.where(c.gold >= GOLD_CHOICES.index("tie"), NONE, c.gold)
        gold_margin = 1.0
    else:  # kept here with no preference, removed by the gold step
        gold_winner, gold_margin = A, 0.0
    return (
        ok | gold,
        np.where(gold, gold_winner, winner).astype(np.int8),
        np.where(gold, gold_margin, margin).astype(np.float64),
        np.where(gold, GOLD, source).astype(np.int8),
    )


def _ranked(pair_id: np.ndarray, margin: np.ndarray) -> np.ndarray:
    """Positions in the order that decides which rows stay: larger |margin| first, then the lower pair id."""
    return np.lexsort((pair_id, -margin))


def curate(c: Candidates, config: RecipeConfig, *, kto: bool = False, timings: dict | None = None,
           ) -> tuple[Curated, Funnel]:  # fmt: skip
    """Apply the steps in order (see the module docstring). Rows come out in pair id order. ``timings``, when
    given, receives the seconds spent in the text steps."""
    timings = {} if timings is None else timings
    funnel = Funnel()
    has, winner, margin, source = _preference(c, config)
    funnel.record("preference", len(c), {"no preference from the source": int((~has).sum())} if not has.all() else {})
    alive = np.flatnonzero(has)
    both_bad = np.zeros(len(c), dtype=bool)

    def step(name: str, drop: np.ndarray, reason: str) -> None:
        nonlocal alive
        removed = int(drop.sum())
        funnel.record(name, len(alive), {reason: removed} if removed else {})
        alive = alive[~drop]

    s = source[alive]
    step("gold", (s == GOLD) & (not config.include_gold), "calibration pair")
    s = source[alive]
    step("human_agreement", (s == HUMAN) & (c.human_agreement[alive] < config.min_human_agreement),
         "human agreement below the minimum")  # fmt: skip
    s = source[alive]
    step("vote_margin", (s == HUMAN) & (margin[alive] < config.min_vote_margin), "vote margin below the minimum")
    s = source[alive]
    judged = (s == JUDGE) | (s == AGREE)
    step("judge_margin", judged & (np.abs(c.judge_mean_margin[alive]) < config.min_judge_margin),
         "judge margin below the minimum")  # fmt: skip
    s = source[alive]
    judged = (s == JUDGE) | (s == AGREE)
    flipped = c.judge_consistent[alive] < c.judges[alive]
    step("judge_inconsistent", judged & flipped & config.drop_judge_inconsistent, "a judge flipped with the order")

    # Tie and both-bad votes count where the pair has a human consensus (calibration pairs have none).
    has_h = c.human_labels[alive] > 0
    undesirable = (winner[alive] == NONE) & has_h & (c.human_both_bad[alive] > c.human_tie[alive])
    undesirable &= kto and config.both_bad_as_undesirable
    both_bad[alive[undesirable]] = True
    step("ties", (winner[alive] == NONE) & ~undesirable, "no preference (tie or both bad)")

    start = time.perf_counter()
    if config.near_duplicates and len(alive):
        similar = similarity.response_similarity(c.texts, c.pair_id[alive])
        same = similar >= config.response_similarity
    else:
        same = np.zeros(len(alive), dtype=bool)
    step("same_responses", same, "responses near-identical")
    timings["same_responses_s"] = time.perf_counter() - start

    start = time.perf_counter()
    threshold = config.prompt_similarity if config.near_duplicates else 1.0
    group = np.zeros(len(c), dtype=np.uint64)
    group[alive] = similarity.prompt_group_keys(c.texts, c.pair_id[alive], threshold)
    timings["prompt_groups_s"] = time.perf_counter() - start

    start = time.perf_counter()
    swap = winner == B
    if config.near_duplicates:
        order = alive[_ranked(c.pair_id[alive], margin[alive])]
        duplicate = similarity.duplicate_pairs(c.texts, c.pair_id[order], swap[order], group[order],
                                               config.response_similarity)  # fmt: skip
        drop = np.isin(c.pair_id[alive], c.pair_id[order][duplicate])
    else:
        drop = np.zeros(len(alive), dtype=bool)
    step("duplicate_pairs", drop, "near-duplicate of a kept pair")
    timings["duplicate_pairs_s"] = time.perf_counter() - start

    over_cap = np.zeros(len(alive), dtype=bool)
    if config.max_pairs_per_prompt:
        order = _ranked(c.pair_id[alive], margin[alive])
        order = order[np.argsort(group[alive][order], kind="stable")]  # by group, each in the deciding order
        g = group[alive][order]
        run_start = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
        rank = np.arange(len(g)) - np.repeat(run_start, np.diff(np.r_[run_start, len(g)]))
        over_cap[order] = rank >= config.max_pairs_per_prompt
    step("per_prompt_cap", over_cap, "over the per-prompt cap")

    chosen = np.where(swap, c.chars_b, c.chars_a)
    rejected = np.where(swap, c.chars_a, c.chars_b)
    surplus = np.zeros(len(alive), dtype=bool)
    longer = np.flatnonzero((chosen[alive] > rejected[alive]) & ~both_bad[alive])
    shorter = np.flatnonzero((chosen[alive] < rejected[alive]) & ~both_bad[alive])
    if config.balance_length and len(longer) != len(shorter):
        big = longer if len(longer) > len(shorter) else shorter
        # random.sample picks positions from the length alone: the same draw as sampling the rows themselves
        surplus[big[random.Random(config.seed).sample(range(len(big)), abs(len(longer) - len(shorter)))]] = True
    step("length_balance", surplus, "length balance")

    rows = Curated(pair_id=c.pair_id[alive], swap=swap[alive], margin=margin[alive], source=source[alive],
                   both_bad=both_bad[alive], group=group[alive], chosen_chars=chosen[alive],
                   rejected_chars=rejected[alive], texts=c.texts)  # fmt: skip
    return rows, funnel


def chosen_longer_share(rows: Curated) -> float | None:
    decisive = ~rows.both_bad & (rows.chosen_chars != rows.rejected_chars)
    if not decisive.any():
        return None
    return int((rows.chosen_chars > rows.rejected_chars)[decisive].sum()) / int(decisive.sum())
