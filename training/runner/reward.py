"""Reward-model jobs (method "reward"): the export's pairs as the token ids TRL's RewardTrainer trains on, and the
held-out evaluation of the trained scorer.

Rows are rendered as a reward-model judge scores them (judging.rewards.scorer.render: the prompt's messages, or a
plain prompt as one user turn, then the response as the assistant's turn, through the tokenizer's chat template) and
tokenized here rather than by TRL, so the model is trained on exactly the texts it will be asked to score. TRL drops
rows longer than max_length instead of truncating them: they are dropped here, counted, and the run fails when none
are left.

Held-out evaluation on the export's test split: accuracy (share of pairs whose chosen response gets the higher
reward; Wilson 95% interval, n) beside a baseline that picks the longer response (in characters, as curation counts
length) on the same pairs, the mean reward of chosen and rejected responses and of their difference (normal 95%
intervals), and a few pairs with their rewards. A test pair longer than max_length is cut from the left (the judge
cuts so too, keeping the response's end, where the reward is read), so every held-out pair counts.
"""

from __future__ import annotations

import torch

from judging.rewards.conversations import conversation

from .evaluation import accuracy, mean_interval, test_pairs

SHOWN_CHARS = 500  # of each text in the examples table


class NothingToTrain(ValueError):
    """Every training row is longer than max_length."""


def response_text(response) -> str:
    return response[-1]["content"] if isinstance(response, list) else str(response)


def token_ids(tokenizer, conversations: list[list[dict]]) -> list[list[int]]:
    from judging.rewards.scorer import render  # the judge's rendering: train on what will be scored

    return tokenizer(render(tokenizer, conversations), add_special_tokens=False)["input_ids"]


def reward_rows(dataset, tokenizer, *, max_length: int, margin: bool):
    """(rows of chosen_ids, rejected_ids and, with ``margin``, the export's margin; rows dropped as too long)."""
    if margin and "margin" not in dataset.column_names:
        raise ValueError("reward_margin: this export has no margin column.")

    def tokenize(batch):
        chosen = token_ids(tokenizer, [conversation(p, c) for p, c in zip(batch["prompt"], batch["chosen"],
                                                                             strict=True)])  # fmt: skip
        rejected = token_ids(tokenizer, [conversation(p, r) for p, r in zip(batch["prompt"], batch["rejected"],
                                                                               strict=True)])  # fmt: skip
        return {"chosen_ids": chosen, "rejected_ids": rejected,
                "length": [max(len(c), len(r)) for c, r in zip(chosen, rejected, strict=True)]}  # fmt: skip

    keep = {"chosen_ids", "rejected_ids", "length", *(["margin"] if margin else [])}
    tokenized = dataset.map(tokenize, batched=True, desc="Rendering and tokenizing pairs")
    tokenized = tokenized.remove_columns([c for c in tokenized.column_names if c not in keep])
    kept = tokenized.filter(lambda lengths: [n <= max_length for n in lengths], input_columns="length", batched=True)
    if len(kept) == 0:
        raise NothingToTrain(
            f"Every training pair is longer than max_length ({max_length} tokens; the shortest is "
            f"{min(tokenized['length'])}): a reward model drops such rows instead of truncating them. Raise "
            "max_length."
        )
    return kept.remove_columns("length"), len(tokenized) - len(kept)


@torch.no_grad()
def rewards(model, tokenizer, conversations: list[list[dict]], max_length: int) -> list[float]:
    """The model's reward for each conversation (cut from the left to max_length tokens), in one padded batch."""
    device = next(model.parameters()).device
    ids = [x[-max_length:] for x in token_ids(tokenizer, conversations)]
    width = max(len(x) for x in ids)
    pad = tokenizer.pad_token_id
    input_ids = torch.tensor([x + [pad] * (width - len(x)) for x in ids], device=device)
    mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids], device=device)
    return model(input_ids=input_ids, attention_mask=mask).logits[:, 0].float().tolist()


def _shown(value) -> str:
    text = value if isinstance(value, str) else "\n\n".join(f"{m['role']}: {m['content']}" for m in value)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "…"


def evaluate_reward(model, tokenizer, test, spec) -> dict:
    """The trained reward model on the first ``spec.eval_pairs`` held-out pairs (module docstring)."""
    model.eval()
    rows = []
    for pair in test_pairs(test, spec.eval_pairs):
        chosen, rejected = rewards(model, tokenizer, [conversation(pair["prompt"], pair["chosen"]),
                                                      conversation(pair["prompt"], pair["rejected"])],
                                   spec.max_length)  # fmt: skip
        rows.append((pair, chosen, rejected))
    lengths = [(len(response_text(p["chosen"])), len(response_text(p["rejected"]))) for p, _, _ in rows]
    return {
        "kind": "reward",
        "pairs": len(rows),
        **accuracy([c > r for _, c, r in rows]),
        "length_baseline": {
            **accuracy([c > r for c, r in lengths]),
            "equal_length": sum(c == r for c, r in lengths),
            "rule": "the longer response (characters) is preferred",
        },  # fmt: skip
        "reward": {
            "chosen": mean_interval([c for _, c, _ in rows]),
            "rejected": mean_interval([r for _, _, r in rows]),
            "margin": mean_interval([c - r for _, c, r in rows]),
        },  # fmt: skip
        "center_rewards": spec.resolved_center_rewards(),
        "examples": [
            {
                "pair_id": p["pair_id"],
                "prompt": _shown(p["prompt"]),
                "chosen": _shown(response_text(p["chosen"])),
                "rejected": _shown(response_text(p["rejected"])),
                "chosen_reward": c,
                "rejected_reward": r,
            }
            for p, c, r in rows[: spec.eval_generations]
        ],  # fmt: skip
    }
