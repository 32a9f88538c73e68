"""One chunk of a generation run's prompts against an OpenAI-compatible generator: every missing sampling slot is
sampled, then (with a rater) every candidate of those prompts without the rater's score is rated. Both go through
judging.endpoint, the code judge runs use: cache first, ``max_concurrency`` requests at a time under the shared
requests-per-minute limit, each result written with its ledger entry in one transaction as it arrives.

What a caller may rely on (as for verdicts): at most one candidate per (prompt, generator, slot) and one rating
per (candidate, judge), enforced by the database, so a chunk delivered twice writes and counts nothing twice; a
reply is cached in the transaction that stores it, so nothing paid for is asked again; the run's budget (the
generator's, covering generation and rating) stops it; pause and cancel are noticed between requests.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import IntegrityError, transaction

from annotation.selectors import guidelines_current
from judging.client import RATING, Generated, ItemRejected, JudgeError, Parsed, ask, generate, parse_reply
from judging.endpoint import (
    ChunkOutcome,
    answer_from_cache,
    cache_store,
    chunk_trouble,
    client_for,
    cost_of,
    is_live,
    ledger_add,
    send_all,
)
from judging.engine import cache_key, ensure_mode
from judging.models import CachedReply, JudgeConfig
from judging.prompts import render_rating_messages

from . import flags
from .models import Candidate, GenerationRun, Generator, Prompt, Rating
from .plan import Slot, messages_for, slots


@dataclass
class SampleCall:
    prompt: Prompt
    slot: Slot
    messages: list[dict]
    key: str


@dataclass
class RateCall:
    candidate: Candidate
    messages: list[dict]
    key: str


def sample_key(generator: Generator, plan: dict, slot: Slot, messages: list[dict]) -> str:
    return cache_key("generate", generator.base_url.rstrip("/"), generator.model, slot.temperature, plan["top_p"],
                     plan["max_tokens"], slot.seed, slot.sample, messages)  # fmt: skip


def rate_key(judge: JudgeConfig, messages: list[dict]) -> str:
    return cache_key("rate", judge.base_url.rstrip("/"), judge.model, judge.temperature, judge.max_tokens, messages)


def _sample_calls(run: GenerationRun, prompt_ids: list[int]) -> list[SampleCall]:
    plan_slots = slots(run.plan)
    done = set(
        Candidate.objects.filter(generator=run.generator, prompt_id__in=prompt_ids,
                                 slot_key__in=[s.key for s in plan_slots]).values_list("prompt_id", "slot_key")
    )  # fmt: skip
    calls = []
    for prompt in Prompt.objects.filter(pk__in=prompt_ids).order_by("pk"):
        messages = messages_for(prompt.messages, run.plan)
        for slot in plan_slots:
            if (prompt.pk, slot.key) not in done:
                calls.append(SampleCall(prompt, slot, messages, sample_key(run.generator, run.plan, slot, messages)))
    return calls


def record_candidate(run: GenerationRun, call: SampleCall, generated: Generated, *, from_cache: bool,
                     model: str = "") -> bool:  # fmt: skip
    """Write one candidate with its flags, cache entry and ledger atomically (``model``: the identity of the weights
    that wrote it, where the generator's model name does not tell). False when its slot was filled."""
    generator, plan = run.generator, run.plan
    cost = cost_of(generator, generated.tokens_in, generated.tokens_out)
    candidate = Candidate(
        prompt=call.prompt, generator=generator, run=run, slot_key=call.slot.key,
        model=(model or generator.model)[:200], temperature=call.slot.temperature, sample=call.slot.sample,
        seed=call.slot.seed, top_p=plan["top_p"],
        max_tokens=plan["max_tokens"], text=generated.text, tokens_in=generated.tokens_in,
        tokens_out=generated.tokens_out, finish_reason=generated.finish_reason[:20],
        cost_usd=0 if from_cache else cost, from_cache=from_cache, empty=flags.is_empty(generated.text),
        truncated=generated.finish_reason == "length", identity_leak=flags.identity_leak(generated.text),
    )  # fmt: skip
    try:
        with transaction.atomic():
            candidate.save(force_insert=True)
            if not from_cache and call.key:
                cache_store(call.key, generated.text, tokens_in=generated.tokens_in, tokens_out=generated.tokens_out,
                            finish_reason=generated.finish_reason)  # fmt: skip
            ledger_add(run, calls=1, from_cache=from_cache, tokens_in=generated.tokens_in,
                       tokens_out=generated.tokens_out, cost=cost, candidates_done=1)  # fmt: skip
    except IntegrityError:
        return False  # another delivery of this chunk filled the slot first
    return True


def mark_duplicates(prompt_ids: list[int]) -> None:
    """Mark each candidate that repeats an earlier one of its prompt (exactly, or nearly: flags.duplicate_of).
    Run after a chunk's writes, so candidates written concurrently are compared too."""
    by_prompt: dict[int, list[tuple[int, str, int | None]]] = {}
    rows = Candidate.objects.filter(prompt_id__in=prompt_ids).order_by("pk")
    for pk, prompt_id, text, duplicate in rows.values_list("pk", "prompt_id", "text", "duplicate_of_id"):
        by_prompt.setdefault(prompt_id, []).append((pk, text, duplicate))
    for items in by_prompt.values():
        for i, (pk, text, current) in enumerate(items):
            found = None if flags.is_empty(text) else flags.duplicate_of(text, [(p, t) for p, t, _ in items[:i]])
            if found != current:
                Candidate.objects.filter(pk=pk).update(duplicate_of_id=found)


def _rate_calls(run: GenerationRun, prompt_ids: list[int]) -> list[RateCall]:
    judge = run.rater
    keys = [s.key for s in slots(run.plan)]
    candidates = (
        Candidate.objects.filter(generator=run.generator, prompt_id__in=prompt_ids, slot_key__in=keys)
        .exclude(ratings__judge=judge)
        .select_related("prompt")
        .order_by("pk")
    )
    guidelines = guidelines_current(run.project)
    body = guidelines.body if guidelines else ""
    calls = []
    for candidate in candidates:
        messages = render_rating_messages(guidelines=body, criteria=run.project.criteria,
                                          prompt=candidate.prompt.messages, response=candidate.text)  # fmt: skip
        calls.append(RateCall(candidate, messages, rate_key(judge, messages)))
    return calls


def record_rating(run: GenerationRun, call: RateCall, parsed: Parsed, *, from_cache: bool) -> bool:
    judge, value = run.rater, parsed.verdict
    rating = Rating(candidate=call.candidate, judge=judge, run=run, raw=parsed.raw[:20000],
                    status=Rating.Status.OK if value else Rating.Status.UNPARSEABLE,
                    score=value.score if value else None, rationale=value.rationale if value else parsed.error,
                    tokens_in=parsed.tokens_in, tokens_out=parsed.tokens_out, from_cache=from_cache)  # fmt: skip
    cost = cost_of(judge, parsed.tokens_in, parsed.tokens_out)
    try:
        with transaction.atomic():
            rating.save(force_insert=True)
            if not from_cache and value is not None:
                cache_store(call.key, parsed.raw, tokens_in=parsed.tokens_in, tokens_out=parsed.tokens_out)
            ledger_add(run, calls=parsed.calls, from_cache=from_cache, tokens_in=parsed.tokens_in,
                       tokens_out=parsed.tokens_out, cost=cost, ratings_done=1,
                       unparseable=0 if value else 1)  # fmt: skip
    except IntegrityError:
        return False
    return True


def sample_chunk(run: GenerationRun, prompt_ids: list[int]) -> ChunkOutcome:
    """Sample the missing slots of these prompts from the run's endpoint generator."""
    outcome = ChunkOutcome()
    generator = run.generator

    def record_cached(call: SampleCall, hit: CachedReply) -> bool:
        generated = Generated(hit.content, hit.tokens_in, hit.tokens_out, hit.finish_reason)
        return record_candidate(run, call, generated, from_cache=True)

    outcome.written, remote = answer_from_cache(_sample_calls(run, prompt_ids), record_cached)
    if remote:
        try:
            client = client_for(generator)
        except JudgeError as exc:
            return chunk_trouble(run, outcome, exc)

        def send(call: SampleCall) -> Generated:
            plan, slot = run.plan, call.slot
            return generate(client, model=generator.model, messages=call.messages, temperature=slot.temperature,
                            top_p=plan["top_p"], max_tokens=plan["max_tokens"], seed=slot.seed)  # fmt: skip

        def rejected(call: SampleCall, exc: ItemRejected) -> bool:
            # The server refused this prompt (too long for its context, say): an empty candidate says so.
            return record_candidate(run, call, Generated("", 0, 0, "rejected"), from_cache=False)

        written, trouble = send_all(run, generator, remote, send=send, budget=generator.budget_usd, rejected=rejected,
                                    record=lambda c, g: record_candidate(run, c, g, from_cache=False))  # fmt: skip
        outcome.written += written
        if trouble is not None:
            mark_duplicates(prompt_ids)
            return chunk_trouble(run, outcome, trouble)
    mark_duplicates(prompt_ids)
    return outcome


def rate_chunk(run: GenerationRun, prompt_ids: list[int]) -> ChunkOutcome:
    """Rate, with the run's rater, every candidate of these prompts that it has not rated yet."""
    outcome = ChunkOutcome()
    judge = run.rater

    def record_cached(call: RateCall, hit: CachedReply) -> bool:
        value, problem = parse_reply(hit.content, RATING)
        parsed = Parsed(value, hit.content, hit.tokens_in, hit.tokens_out, None, error=problem)
        return record_rating(run, call, parsed, from_cache=True)

    outcome.written, remote = answer_from_cache(_rate_calls(run, prompt_ids), record_cached)
    if not remote:
        return outcome
    try:
        client = client_for(judge)
        mode = ensure_mode(judge, client, remote[0].messages)
    except JudgeError as exc:
        return chunk_trouble(run, outcome, exc)

    def send(call: RateCall) -> Parsed:
        return ask(client, shape=RATING, model=judge.model, messages=call.messages, mode=mode,
                   temperature=judge.temperature, max_tokens=judge.max_tokens, logprobs=False)  # fmt: skip

    def rejected(call: RateCall, exc: ItemRejected) -> bool:
        return record_rating(run, call, Parsed(None, exc.message, 0, 0, None, error=exc.message, calls=0),
                             from_cache=False)  # fmt: skip

    written, trouble = send_all(run, judge, remote, send=send, budget=run.generator.budget_usd, rejected=rejected,
                                record=lambda c, p: record_rating(run, c, p, from_cache=False))  # fmt: skip
    outcome.written += written
    return chunk_trouble(run, outcome, trouble) if trouble is not None else outcome


def run_chunk(run: GenerationRun, prompt_ids: list[int]) -> ChunkOutcome:
    """Sample (endpoint generators; a local checkpoint has sampled already on the gpu queue), then rate (with a
    rater) the given prompts of a live run."""
    if run.generator.kind == Generator.Kind.LOCAL:
        outcome = ChunkOutcome()
    else:
        outcome = sample_chunk(run, prompt_ids)
    if outcome.retry_in is not None or run.rater_id is None or not is_live(run):
        return outcome
    if run.rater.kind == JudgeConfig.Kind.REWARD_MODEL:
        return outcome  # rated on the gpu queue once every candidate is in (generation.tasks)
    rated = rate_chunk(run, prompt_ids)
    rated.written += outcome.written
    return rated
