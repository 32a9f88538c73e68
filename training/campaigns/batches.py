"""Which prompts each round samples: the pool split into consecutive batches, none reused across rounds unless
asked (then the pool is walked round and round)."""

from __future__ import annotations


def split_batches(prompt_ids: list[int], *, per_round: int, rounds: int, reuse: bool = False) -> list[list[int]]:
    """``rounds`` batches of ``per_round`` prompt ids. Without ``reuse`` the pool must hold them all (ValueError
    saying how many it has); with it, a round takes up where the last one stopped, wrapping around."""
    if not prompt_ids:
        raise ValueError("the prompt set has no prompts left to generate for")
    if not reuse and len(prompt_ids) < per_round * rounds:
        raise ValueError(f"{rounds} rounds of {per_round} prompts need {per_round * rounds} prompts; the pool has "
                         f"{len(prompt_ids)} (take fewer per round, or allow reusing prompts)")  # fmt: skip
    if not reuse:
        return [prompt_ids[i * per_round : (i + 1) * per_round] for i in range(rounds)]
    size = min(per_round, len(prompt_ids))
    return [[prompt_ids[(i * size + j) % len(prompt_ids)] for j in range(size)] for i in range(rounds)]
