"""Judging one chunk of a run's pairs: cache first, then the server (concurrently, under the shared rate limit),
each result written as it arrives.

What a caller may rely on:
- at most one verdict per (pair, judge, prompt version, order): the database enforces it and a write that loses the
  race changes nothing, so a chunk delivered twice (a killed worker) neither duplicates nor double-counts;
- a reply is cached (keyed by model, sampling parameters and the exact messages) in the same transaction as its
  verdict, so nothing already paid for is asked again;
- the run's ledger (calls, tokens, cost) is updated with every write; reaching the budget stops the run (replies
  already in flight, at most ``max_concurrency``, are still recorded);
- pause, cancel and budget are noticed between requests; transient server trouble ends the chunk early with a
  delay after which the task should run it again; a fatal error (bad key, unknown model) fails the run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from django.db import IntegrityError, transaction

from annotation.models import Pair
from annotation.selectors import guidelines_current

from .client import ItemRejected, JudgeError, Parsed, detect_logprobs, detect_mode, judge_messages, parse_verdict
from .endpoint import (
    ChunkOutcome,
    answer_from_cache,
    cache_store,
    chunk_trouble,
    client_for,
    cost_of,
    ledger_add,
    send_all,
)
from .models import CachedReply, JudgeConfig, JudgeRun, PairJudgement, Verdict
from .prompts import render_messages


@dataclass
class JudgeCall:
    """One request to the judge: a pair in one order (A first or B first), its messages and its cache key."""

    pair: Pair
    order: str
    messages: list[dict]
    key: str


def cache_key(*parts) -> str:
    """The key of a reply: everything that determines it (endpoint, model, sampling parameters, the messages)."""
    blob = json.dumps(parts, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def judge_cache_key(judge: JudgeConfig, messages: list[dict]) -> str:
    return cache_key(judge.base_url.rstrip("/"), judge.model, judge.temperature, judge.max_tokens, messages)


def orders_for(judge: JudgeConfig) -> tuple[str, ...]:
    return (Verdict.Order.AB, Verdict.Order.BA) if judge.both_orders else (Verdict.Order.AB,)


def _calls(run: JudgeRun, pair_ids: list[int]) -> list[JudgeCall]:
    judge, version = run.judge, run.prompt_version
    done = set(
        Verdict.objects.filter(judge=judge, prompt_version=version, pair_id__in=pair_ids).values_list(
            "pair_id", "order"
        )
    )
    guidelines = guidelines_current(run.project)
    body = guidelines.body if guidelines else ""
    calls = []
    for pair in Pair.objects.filter(pk__in=pair_ids).order_by("pk"):
        for order in orders_for(judge):
            if (pair.pk, order) in done:
                continue
            first, second = (pair.response_a, pair.response_b) if order == "ab" else (pair.response_b, pair.response_a)
            messages = render_messages(system=version.system, template=version.template, guidelines=body,
                                       criteria=run.project.criteria, prompt=pair.prompt, first=first,
                                       second=second)  # fmt: skip
            calls.append(JudgeCall(pair, order, messages, judge_cache_key(judge, messages)))
    return calls


def _to_pair_terms(order: str, slot_winner: str) -> str:
    if slot_winner == "tie":
        return "tie"
    first_is_a = order == "ab"
    return ("A" if first_is_a else "B") if slot_winner == "A" else ("B" if first_is_a else "A")


def _record(run: JudgeRun, call: JudgeCall, parsed: Parsed, *, from_cache: bool) -> bool:
    """Write one verdict (and its cache entry and ledger) atomically. False when it was already there."""
    judge = run.judge
    v = parsed.verdict
    verdict = Verdict(pair=call.pair, judge=judge, prompt_version=run.prompt_version, run=run, order=call.order,
                      status=Verdict.Status.OK if v else Verdict.Status.UNPARSEABLE,
                      raw=parsed.raw[:20000], tokens_in=parsed.tokens_in, tokens_out=parsed.tokens_out,
                      confidence=parsed.confidence, from_cache=from_cache)  # fmt: skip
    if v is not None:
        verdict.winner_slot = {"A": "first", "B": "second", "tie": "tie"}[v.winner]
        verdict.winner = _to_pair_terms(call.order, v.winner)
        first_score, second_score = v.score_a, v.score_b
        verdict.score_a, verdict.score_b = (
            (first_score, second_score) if call.order == "ab" else (second_score, first_score)
        )
        verdict.rationale = v.rationale
    else:
        verdict.rationale = parsed.error
    cost = cost_of(judge, parsed.tokens_in, parsed.tokens_out)
    try:
        with transaction.atomic():
            verdict.save(force_insert=True)
            if not from_cache and v is not None:
                cache_store(call.key, parsed.raw, tokens_in=parsed.tokens_in, tokens_out=parsed.tokens_out,
                            confidence=parsed.confidence)  # fmt: skip
            ledger_add(run, calls=parsed.calls, from_cache=from_cache, tokens_in=parsed.tokens_in,
                       tokens_out=parsed.tokens_out, cost=cost, verdicts_done=1,
                       unparseable=0 if v else 1)  # fmt: skip
            combine(run, call.pair.pk)
    except IntegrityError:
        return False  # another delivery of this chunk wrote it first
    return True


def combine(run: JudgeRun, pair_id: int) -> None:
    """Once every order of a pair is in, store the pair's combined judgement (what curation reads)."""
    verdicts = list(
        Verdict.objects.filter(pair_id=pair_id, judge=run.judge, prompt_version=run.prompt_version).values_list(
            "status", "winner", "score_a", "score_b"
        )
    )
    if len(verdicts) < len(orders_for(run.judge)):
        return
    parsed = [v for v in verdicts if v[0] == Verdict.Status.OK]
    if not parsed:
        return
    winners = {w for _, w, _, _ in parsed}
    consistent = len(winners) == 1 and len(parsed) == len(verdicts)
    margin = sum(a - b for _, _, a, b in parsed) / len(parsed)
    PairJudgement.objects.update_or_create(
        pair_id=pair_id, judge=run.judge, prompt_version=run.prompt_version,
        defaults={"winner": parsed[0][1] if consistent else "tie", "consistent": consistent, "margin": margin,
                  "orders": len(parsed)},
    )  # fmt: skip


def ensure_mode(judge: JudgeConfig, client, messages: list[dict]) -> str:
    """Detect (once per configuration, then remembered) the response format and whether logprobs come back."""
    if judge.response_mode and judge.logprobs_supported is not None:
        return judge.response_mode
    probe = {"model": judge.model, "messages": messages, "max_tokens": min(judge.max_tokens, 64)}
    mode = judge.response_mode or detect_mode(client, **probe)
    logprobs = detect_logprobs(client, mode=mode, **probe)
    JudgeConfig.objects.filter(pk=judge.pk).update(response_mode=mode, logprobs_supported=logprobs)
    judge.response_mode, judge.logprobs_supported = mode, logprobs
    return mode


def judge_chunk(run: JudgeRun, pair_ids: list[int]) -> ChunkOutcome:
    """Judge the given pairs of a live run (skipping orders already judged). See the module docstring."""
    outcome = ChunkOutcome()
    judge = run.judge

    def record_cached(call: JudgeCall, hit: CachedReply) -> bool:
        verdict, problem = parse_verdict(hit.content)
        parsed = Parsed(verdict, hit.content, hit.tokens_in, hit.tokens_out, hit.confidence, error=problem)
        return _record(run, call, parsed, from_cache=True)

    outcome.written, remote = answer_from_cache(_calls(run, pair_ids), record_cached)
    if not remote:
        return outcome
    try:
        client = client_for(judge)
        mode = ensure_mode(judge, client, remote[0].messages)
    except JudgeError as exc:
        return chunk_trouble(run, outcome, exc)

    def send(call: JudgeCall) -> Parsed:
        return judge_messages(client, model=judge.model, messages=call.messages, mode=mode,
                              temperature=judge.temperature, max_tokens=judge.max_tokens,
                              logprobs=bool(judge.logprobs_supported))  # fmt: skip

    def rejected(call: JudgeCall, exc: ItemRejected) -> bool:
        return _record(run, call, Parsed(None, exc.message, 0, 0, None, error=exc.message, calls=0), from_cache=False)

    written, trouble = send_all(run, judge, remote, send=send, record=lambda c, p: _record(run, c, p, from_cache=False),
                                rejected=rejected, budget=judge.budget_usd)  # fmt: skip
    outcome.written += written
    return chunk_trouble(run, outcome, trouble) if trouble is not None else outcome
