"""A reward model's run over pairs: each response scored once, each pair's verdict written from the two scores.

Like an LLM judge's run, but order-free (one verdict per pair, order "ab"): the winner is the response with the
higher reward, the margin the difference (so curation, consensus and audits read reward models and LLM judges
alike). Scores are kept in the reply cache under a key of the model's identity (base and adapter digest) and the
scored conversation, in the transaction that writes the verdict: a resumed or repeated run scores nothing twice,
and a response shared by several pairs is scored once. ``score_fn`` is the scorer bound to a loaded model (tests
and the worker pass their own); torch never enters this module.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal

from django.db import IntegrityError, transaction

from annotation.models import Pair

from ..endpoint import cache_store, is_live, ledger_add
from ..engine import cache_key, combine
from ..lifecycle import run_begin, run_finish_if_done, run_stop
from ..models import CachedReply, JudgeRun, Verdict
from .conversations import conversation

ScoreFn = Callable[[list[list[dict]]], list[tuple[float, int]]]


def score_key(identity: str, messages: list[dict]) -> str:
    return cache_key("reward", identity, messages)


def cached_scores(keys) -> dict[str, float]:
    return {k: float(v) for k, v in CachedReply.objects.filter(key__in=set(keys)).values_list("key", "content")}


def score_missing(conversations: dict[str, list[dict]], score_fn: ScoreFn) -> tuple[dict[str, float], dict]:
    """(every key's score, {key: (score, tokens)} of the ones scored now rather than found in the cache)."""
    known = cached_scores(conversations)
    todo = [k for k in conversations if k not in known]
    fresh = dict(zip(todo, score_fn([conversations[k] for k in todo]), strict=True)) if todo else {}
    return known | {k: s for k, (s, _) in fresh.items()}, fresh


def store_fresh(keys, fresh: dict) -> int:
    """Cache the scores among ``keys`` computed now; the tokens they took. Inside the writing transaction."""
    tokens = 0
    for key in dict.fromkeys(keys):  # a pair whose two responses are the same text: one score
        if key in fresh:
            value, n = fresh[key]
            cache_store(key, repr(float(value)), tokens_in=n, tokens_out=0)
            tokens += n
    return tokens


def winner_of(a: float, b: float) -> str:
    return "A" if a > b else "B" if b > a else "tie"


def _record(run: JudgeRun, pair: Pair, keys: tuple[str, str], scores: dict[str, float], fresh: dict) -> bool:
    a, b = scores[keys[0]], scores[keys[1]]
    winner = winner_of(a, b)
    verdict = Verdict(pair=pair, judge=run.judge, prompt_version=run.prompt_version, run=run, order="ab",
                      status=Verdict.Status.OK, winner=winner,
                      winner_slot={"A": "first", "B": "second", "tie": "tie"}[winner], score_a=a, score_b=b,
                      rationale=f"reward A {a:.4f}, B {b:.4f}", raw=json.dumps({"reward_a": a, "reward_b": b}),
                      from_cache=not any(k in fresh for k in keys))  # fmt: skip
    try:
        with transaction.atomic():
            verdict.save(force_insert=True)
            tokens = store_fresh(keys, fresh)
            ledger_add(run, calls=0, from_cache=verdict.from_cache, tokens_in=tokens, tokens_out=0, cost=Decimal(0),
                       verdicts_done=1)  # fmt: skip
            combine(run, pair.pk)
    except IntegrityError:
        return False  # another delivery of this run wrote it first
    return True


def reward_chunk(run: JudgeRun, pair_ids: list[int], score_fn: ScoreFn, identity: str) -> int:
    """Score the pairs of this chunk that have no verdict yet; how many verdicts were written."""
    done = set(Verdict.objects.filter(judge=run.judge_id, prompt_version=run.prompt_version_id,
                                      pair_id__in=pair_ids).values_list("pair_id", flat=True))  # fmt: skip
    pairs = list(Pair.objects.filter(pk__in=[p for p in pair_ids if p not in done]).order_by("pk"))
    conversations, pair_keys = {}, {}
    for pair in pairs:
        keys = []
        for response in (pair.response_a, pair.response_b):
            messages = conversation(pair.prompt, response)
            key = score_key(identity, messages)
            conversations[key] = messages
            keys.append(key)
        pair_keys[pair.pk] = tuple(keys)
    scores, fresh = score_missing(conversations, score_fn)
    written = 0
    for pair in pairs:
        written += _record(run, pair, pair_keys[pair.pk], scores, fresh)
        for key in pair_keys[pair.pk]:
            fresh.pop(key, None)  # cached (and its tokens counted) with the first pair that has it
    return written


def reward_run(run: JudgeRun, load: Callable[[], tuple[ScoreFn, str]]) -> None:
    """Score every pair of a live run, chunk by chunk (pause and cancel are noticed between chunks), then finish
    it. ``load`` returns (score_fn, model identity); a model that cannot load fails the run with its reason."""
    chunks = run_begin(run)
    if not chunks:
        return
    try:
        score_fn, identity = load()
    except Exception as exc:  # noqa: BLE001 - any load failure ends the run with its reason
        first = (str(exc).strip().splitlines() or [""])[0][:1000]
        run_stop(run, JudgeRun.State.FAILED, f"Could not load the reward model {run.judge.model}: "
                                             f"{type(exc).__name__}: {first}")  # fmt: skip
        return
    try:
        for pair_ids in chunks:
            if not is_live(run):
                return
            reward_chunk(run, pair_ids, score_fn, identity)
    except Exception as exc:  # a chat template refusing a prompt, out of memory, the time limit: the run says so
        run_stop(run, JudgeRun.State.FAILED, f"Scoring failed: {type(exc).__name__}: {str(exc)[:1000]} (resume "
                                             "scores only the pairs without a verdict)")  # fmt: skip
        raise
    run_finish_if_done(run)
