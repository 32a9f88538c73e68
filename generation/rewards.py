"""Rating candidates with a reward model (a rater of kind reward_model): each candidate of the run's prompts and
slots without the rater's rating gets its reward as the rating's score (unbounded, higher is better), so pairing
picks best vs worst by reward. Scores share the reward cache of judge runs (judging.rewards.engine): a candidate a
killed worker already scored is not scored again, and a redelivered task writes no second rating (one per candidate
and judge, enforced by the database). ``score_fn`` comes from judging.rewards.scorer on the gpu queue."""

from __future__ import annotations

import json
from decimal import Decimal

from django.db import IntegrityError, transaction

from judging.endpoint import is_live, ledger_add
from judging.models import JudgeConfig
from judging.rewards.conversations import conversation
from judging.rewards.engine import ScoreFn, score_key, score_missing, store_fresh

from .models import Candidate, GenerationRun, Rating
from .plan import slots


def rates_with_reward_model(run: GenerationRun) -> bool:
    return run.rater_id is not None and run.rater.kind == JudgeConfig.Kind.REWARD_MODEL


def _record(run: GenerationRun, candidate: Candidate, key: str, scores: dict[str, float], fresh: dict) -> bool:
    value = scores[key]
    rating = Rating(candidate=candidate, judge=run.rater, run=run, status=Rating.Status.OK, score=value,
                    raw=json.dumps({"reward": value}), from_cache=key not in fresh)  # fmt: skip
    try:
        with transaction.atomic():
            rating.save(force_insert=True)
            tokens = store_fresh([key], fresh)
            ledger_add(run, calls=0, from_cache=rating.from_cache, tokens_in=tokens, tokens_out=0, cost=Decimal(0),
                       ratings_done=1)  # fmt: skip
    except IntegrityError:
        return False
    return True


def reward_rate(run: GenerationRun, score_fn: ScoreFn, identity: str, *, batch: int = 64) -> int:
    """Rate what is missing, ``batch`` candidates at a time (pause and cancel are noticed between batches); how
    many ratings were written."""
    keys = [s.key for s in slots(run.plan)]
    todo = list(
        Candidate.objects.filter(generator=run.generator_id, prompt_id__in=run.prompt_ids, slot_key__in=keys)
        .exclude(ratings__judge=run.rater_id)
        .select_related("prompt")
        .order_by("pk")
    )
    written = 0
    for start in range(0, len(todo), batch):
        if not is_live(run):
            break
        items = [(c, conversation(c.prompt.messages, c.text)) for c in todo[start : start + batch]]
        keyed = [(c, score_key(identity, messages), messages) for c, messages in items]
        scores, fresh = score_missing({k: messages for _, k, messages in keyed}, score_fn)  # same text: scored once
        for candidate, key, _ in keyed:
            written += _record(run, candidate, key, scores, fresh)
            fresh.pop(key, None)  # cached with its first rating
    return written
