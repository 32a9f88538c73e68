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
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from annotation.models import Pair
from annotation.selectors import guidelines_current

from . import ratelimit
from .client import (
    Fatal,
    ItemRejected,
    JudgeError,
    Parsed,
    Transient,
    classify,
    detect_logprobs,
    detect_mode,
    judge_messages,
    make_client,
    parse_verdict,
)
from .lifecycle import run_stop
from .models import CachedReply, JudgeConfig, JudgeRun, PairJudgement, Verdict
from .prompts import render_messages

STATE_CHECK_EVERY = 8  # results between re-reading the run's state (pause/cancel from the page)


@dataclass
class ChunkOutcome:
    written: int = 0
    retry_in: float | None = None  # transient trouble: run the chunk again after this many seconds
    reason: str = ""


@dataclass
class JudgeCall:
    """One request to the judge: a pair in one order (A first or B first), its messages and its cache key."""

    pair: Pair
    order: str
    messages: list[dict]
    key: str


def cache_key(judge: JudgeConfig, messages: list[dict]) -> str:
    blob = json.dumps(
        [judge.base_url.rstrip("/"), judge.model, judge.temperature, judge.max_tokens, messages],
        ensure_ascii=False, sort_keys=True, separators=(",", ":"),
    )  # fmt: skip
    return hashlib.sha256(blob.encode()).hexdigest()


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
            calls.append(JudgeCall(pair, order, messages, cache_key(judge, messages)))
    return calls


def _cost(judge: JudgeConfig, tokens_in: int, tokens_out: int) -> Decimal:
    return (judge.price_input_per_m * tokens_in + judge.price_output_per_m * tokens_out) / Decimal(1_000_000)


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
    paid = 0 if from_cache else parsed.calls
    cost = Decimal(0) if from_cache else _cost(judge, parsed.tokens_in, parsed.tokens_out)
    try:
        with transaction.atomic():
            verdict.save(force_insert=True)
            if not from_cache and v is not None:
                CachedReply.objects.get_or_create(
                    key=call.key,
                    defaults={
                        "content": parsed.raw,
                        "tokens_in": parsed.tokens_in,
                        "tokens_out": parsed.tokens_out,
                        "confidence": parsed.confidence,
                    },  # fmt: skip
                )
            JudgeRun.objects.filter(pk=run.pk).update(
                verdicts_done=F("verdicts_done") + 1,
                unparseable=F("unparseable") + (0 if v else 1),
                api_calls=F("api_calls") + paid,
                cache_hits=F("cache_hits") + (1 if from_cache else 0),
                tokens_in=F("tokens_in") + (0 if from_cache else parsed.tokens_in),
                tokens_out=F("tokens_out") + (0 if from_cache else parsed.tokens_out),
                cost_usd=F("cost_usd") + cost,
                heartbeat_at=timezone.now(),
            )
            _combine(run, call.pair.pk)
    except IntegrityError:
        return False  # another delivery of this chunk wrote it first
    return True


def _combine(run: JudgeRun, pair_id: int) -> None:
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


def _ensure_mode(judge: JudgeConfig, client, call: JudgeCall) -> str:
    """Detect (once per configuration, then remembered) the response format and whether logprobs come back."""
    if judge.response_mode and judge.logprobs_supported is not None:
        return judge.response_mode
    probe = {"model": judge.model, "messages": call.messages, "max_tokens": min(judge.max_tokens, 64)}
    mode = judge.response_mode or detect_mode(client, **probe)
    logprobs = detect_logprobs(client, mode=mode, **probe)
    JudgeConfig.objects.filter(pk=judge.pk).update(response_mode=mode, logprobs_supported=logprobs)
    judge.response_mode, judge.logprobs_supported = mode, logprobs
    return mode


def _call(judge: JudgeConfig, client, mode: str, call: JudgeCall, stop: threading.Event) -> Parsed | None:
    if stop.is_set():
        return None
    ratelimit.acquire(str(judge.public_id), judge.requests_per_minute)
    if stop.is_set():
        return None
    try:
        return judge_messages(client, model=judge.model, messages=call.messages, mode=mode,
                              temperature=judge.temperature, max_tokens=judge.max_tokens,
                              logprobs=bool(judge.logprobs_supported))  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - classified: transport errors become JudgeError subclasses
        raise classify(exc) from exc


def _live(run: JudgeRun) -> bool:
    state = JudgeRun.objects.filter(pk=run.pk).values_list("state", flat=True).first()
    return state in JudgeRun.LIVE


def _over_budget(run: JudgeRun) -> bool:
    if run.judge.budget_usd is None:
        return False
    cost = JudgeRun.objects.filter(pk=run.pk).values_list("cost_usd", flat=True).first()
    return cost is not None and cost >= run.judge.budget_usd


def judge_chunk(run: JudgeRun, pair_ids: list[int]) -> ChunkOutcome:
    """Judge the given pairs of a live run (skipping orders already judged). See the module docstring."""
    outcome = ChunkOutcome()
    judge = run.judge
    calls = _calls(run, pair_ids)
    cached = {c.key: c for c in CachedReply.objects.filter(key__in=[c.key for c in calls])}
    remote = []
    for call in calls:
        hit = cached.get(call.key)
        if hit is None:
            remote.append(call)
            continue
        verdict, problem = parse_verdict(hit.content)
        parsed = Parsed(verdict, hit.content, hit.tokens_in, hit.tokens_out, hit.confidence, error=problem)
        outcome.written += _record(run, call, parsed, from_cache=True)
    if not remote:
        return outcome
    try:
        client = make_client(base_url=judge.base_url, api_key_env=judge.api_key_env)
        mode = _ensure_mode(judge, client, remote[0])
    except JudgeError as exc:
        return _trouble(run, outcome, exc)
    stop = threading.Event()
    trouble: JudgeError | None = None
    with ThreadPoolExecutor(max_workers=judge.max_concurrency, thread_name_prefix="judge") as pool:
        futures = {pool.submit(_call, judge, client, mode, call, stop): call for call in remote}
        for i, future in enumerate(as_completed(futures), start=1):
            call = futures[future]
            try:
                parsed = future.result()
            except ItemRejected as exc:
                parsed = Parsed(None, exc.message, 0, 0, None, error=exc.message, calls=0)
            except JudgeError as exc:
                trouble = trouble or exc
                stop.set()
                continue
            if parsed is None:
                continue  # stopped before it was sent
            outcome.written += _record(run, call, parsed, from_cache=False)
            if _over_budget(run):
                run_stop(run, JudgeRun.State.BUDGET, f"The budget of ${run.judge.budget_usd} was reached.")
                stop.set()
            elif i % STATE_CHECK_EVERY == 0 and not _live(run):
                stop.set()
    if trouble is not None:
        return _trouble(run, outcome, trouble)
    return outcome


def _trouble(run: JudgeRun, outcome: ChunkOutcome, exc: JudgeError) -> ChunkOutcome:
    if isinstance(exc, Fatal):
        run_stop(run, JudgeRun.State.FAILED, exc.message)
        outcome.reason = exc.message
        return outcome
    if isinstance(exc, Transient):
        outcome.retry_in = exc.retry_after or 0.0
        outcome.reason = exc.message
        return outcome
    run_stop(run, JudgeRun.State.FAILED, exc.message)  # ItemRejected while detecting the format
    outcome.reason = exc.message
    return outcome
