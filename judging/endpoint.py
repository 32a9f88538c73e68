"""Sending a run's requests to one OpenAI-compatible endpoint: what judge runs and generation runs share.

- ``client_for``: the openai client for an Endpoint (key from the named environment variable, guarded outbound);
- ``cost_of``, ``ledger_add`` and ``cache_store``: prices, the run's counters (calls, cache hits, tokens, cost) as
  F() updates, and the paid reply kept for re-runs, all inside the transaction that writes the result they pay for;
- ``send_all``: the requests of one chunk, ``max_concurrency`` at a time under the shared requests-per-minute limit;
  each result is handed to ``record`` as it arrives; the budget, pause and cancel are noticed between requests;
  transport trouble stops the chunk and comes back classified;
- ``chunk_trouble``: what a chunk's trouble means for the run (fatal: the run fails; transient: retry the chunk).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from decimal import Decimal
from typing import TypeVar

import openai
from django.db.models import F
from django.utils import timezone

from . import ratelimit
from .client import Fatal, ItemRejected, JudgeError, Transient, classify, make_client
from .lifecycle import run_stop
from .models import CachedReply, Endpoint, EndpointRun

STATE_CHECK_EVERY = 8  # results between re-reading the run's state (pause/cancel from the page)

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass
class ChunkOutcome:
    written: int = 0
    retry_in: float | None = None  # transient trouble: run the chunk again after this many seconds
    reason: str = ""


def client_for(endpoint: Endpoint) -> openai.OpenAI:
    return make_client(base_url=endpoint.base_url, api_key_env=endpoint.api_key_env)


def cost_of(endpoint: Endpoint, tokens_in: int, tokens_out: int) -> Decimal:
    return (endpoint.price_input_per_m * tokens_in + endpoint.price_output_per_m * tokens_out) / Decimal(1_000_000)


def ledger_add(run: EndpointRun, *, calls: int, from_cache: bool, tokens_in: int, tokens_out: int, cost: Decimal,
               **counters) -> None:  # fmt: skip
    """Count one result on the run (``counters``: the run's own counters to add to, e.g. verdicts_done=1)."""
    type(run).objects.filter(pk=run.pk).update(
        api_calls=F("api_calls") + (0 if from_cache else calls),
        cache_hits=F("cache_hits") + (1 if from_cache else 0),
        tokens_in=F("tokens_in") + (0 if from_cache else tokens_in),
        tokens_out=F("tokens_out") + (0 if from_cache else tokens_out),
        cost_usd=F("cost_usd") + (Decimal(0) if from_cache else cost),
        heartbeat_at=timezone.now(),
        **{name: F(name) + n for name, n in counters.items()},
    )


def cache_store(key: str, content: str, *, tokens_in: int, tokens_out: int, confidence: float | None = None,
                finish_reason: str = "") -> None:  # fmt: skip
    """Keep a paid reply under its key (one INSERT ... ON CONFLICT DO NOTHING: a reply cached by another delivery
    of the same chunk stays as it was). Call inside the transaction that records what it paid for."""
    reply = CachedReply(key=key, content=content, tokens_in=tokens_in, tokens_out=tokens_out, confidence=confidence,
                        finish_reason=finish_reason[:20])  # fmt: skip
    CachedReply.objects.bulk_create([reply], ignore_conflicts=True)


def answer_from_cache(calls: list, record_cached: Callable[[object, CachedReply], bool]) -> tuple[int, list]:
    """Record every call (anything with a ``key``) whose reply is cached, with ``record_cached(call, reply)``.
    Returns (results written, the calls still to send)."""
    cached = {c.key: c for c in CachedReply.objects.filter(key__in=[call.key for call in calls])}
    written, remote = 0, []
    for call in calls:
        hit = cached.get(call.key)
        if hit is None:
            remote.append(call)
        else:
            written += record_cached(call, hit)
    return written, remote


def is_live(run: EndpointRun) -> bool:
    state = type(run).objects.filter(pk=run.pk).values_list("state", flat=True).first()
    return state in run.LIVE


def over_budget(run: EndpointRun, budget: Decimal | None) -> bool:
    if budget is None:
        return False
    cost = type(run).objects.filter(pk=run.pk).values_list("cost_usd", flat=True).first()
    return cost is not None and cost >= budget


def _send_one(endpoint: Endpoint, send: Callable, item, stop: threading.Event):
    if stop.is_set():
        return None
    ratelimit.acquire(str(endpoint.public_id), endpoint.requests_per_minute)
    if stop.is_set():
        return None
    try:
        return send(item)
    except JudgeError:
        raise
    except Exception as exc:  # noqa: BLE001 - classified: transport errors become JudgeError subclasses
        raise classify(exc) from exc


def send_all(run: EndpointRun, endpoint: Endpoint, items: Iterable[Item], *, send: Callable[[Item], Result | None],
             record: Callable[[Item, Result], bool], rejected: Callable[[Item, ItemRejected], bool],
             budget: Decimal | None) -> tuple[int, JudgeError | None]:  # fmt: skip
    """Send every item (``send`` makes the request, ``record`` writes its result and returns whether it wrote;
    ``rejected`` records an item the server refused). Returns (results written, the trouble that stopped it)."""
    stop = threading.Event()
    trouble: JudgeError | None = None
    written = 0
    with ThreadPoolExecutor(max_workers=endpoint.max_concurrency, thread_name_prefix="endpoint") as pool:
        futures = {pool.submit(_send_one, endpoint, send, item, stop): item for item in items}
        for i, future in enumerate(as_completed(futures), start=1):
            item = futures[future]
            try:
                result = future.result()
            except ItemRejected as exc:
                written += rejected(item, exc)
                continue
            except JudgeError as exc:
                trouble = trouble or exc
                stop.set()
                continue
            if result is None:
                continue  # stopped before it was sent
            written += record(item, result)
            if over_budget(run, budget):
                run_stop(run, run.State.BUDGET, f"The budget of ${budget} was reached.")
                stop.set()
            elif i % STATE_CHECK_EVERY == 0 and not is_live(run):
                stop.set()
    return written, trouble


def chunk_trouble(run: EndpointRun, outcome: ChunkOutcome, exc: JudgeError) -> ChunkOutcome:
    """Transient trouble: the chunk is run again later; anything else ends the run with the reason."""
    outcome.reason = exc.message
    if isinstance(exc, Transient):
        outcome.retry_in = exc.retry_after or 0.0
    else:  # Fatal, or ItemRejected while detecting the response format
        run_stop(run, run.State.FAILED, exc.message)
    return outcome


__all__ = ["ChunkOutcome", "Fatal", "chunk_trouble", "client_for", "cost_of", "ledger_add", "send_all"]
