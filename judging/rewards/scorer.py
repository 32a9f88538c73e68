"""Loading a reward model and scoring conversations with it (torch: imported on ``gpu`` queue workers only).

A reward model is a sequence-classification checkpoint with one output (TRL's RewardTrainer, or a hub model such as
Skywork-Reward): a base model (folder, GGUF file or hub id, resolved as for training jobs) with an optional LoRA
adapter whose saved ``score`` head replaces the base model's. A conversation is the prompt's messages followed by
the response as the assistant's turn, formatted by the tokenizer's chat template (as TRL formats conversational
exports); the reward is read at the last token, so long inputs are cut from the left and keep the response's end.
"""

from __future__ import annotations

from pathlib import Path

import torch
from django.conf import settings

from ..checkpoints import model_identity, resolve_base_model


def load(model_name: str, adapter: str = ""):
    """(model, tokenizer) in eval mode on the best device."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = resolve_base_model(model_name, Path(settings.MODEL_CACHE))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = AutoTokenizer.from_pretrained(adapter or path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side, tokenizer.truncation_side = "right", "left"
    # A checkpoint without a trained score head (a plain causal LM) gets a new random one: seeded, so every load
    # draws the same head and cached rewards stay consistent with fresh ones.
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=1, dtype=torch.bfloat16 if device == "cuda" else torch.float32
    )
    model.config.pad_token_id = tokenizer.pad_token_id
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    return model.to(device).eval(), tokenizer


def render(tokenizer, conversations: list[list[dict]]) -> list[str]:
    if getattr(tokenizer, "chat_template", None):
        return [tokenizer.apply_chat_template(c, tokenize=False) for c in conversations]
    return ["\n\n".join(m["content"] for m in c) + (tokenizer.eos_token or "") for c in conversations]


@torch.no_grad()
def score(model, tokenizer, conversations: list[list[dict]], *, batch_size: int = 8,
          max_length: int = 2048) -> list[tuple[float, int]]:  # fmt: skip
    """(reward, tokens scored) per conversation, in order."""
    texts = render(tokenizer, conversations)
    out: list[tuple[float, int]] = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(texts[start : start + batch_size], return_tensors="pt", padding=True, truncation=True,
                          max_length=max_length, add_special_tokens=False).to(model.device)  # fmt: skip
        logits = model(**batch).logits[:, 0].float().tolist()
        tokens = batch["attention_mask"].sum(dim=1).tolist()
        out.extend(zip(logits, (int(t) for t in tokens), strict=True))
    return out


def scorer_for(model_name: str, adapter: str = ""):
    """(score_fn over conversations, model identity) for a reward model: what judging.rewards.engine needs."""
    model, tokenizer = load(model_name, adapter)
    batch_size = settings.REWARD_BATCH

    def score_fn(conversations: list[list[dict]]) -> list[tuple[float, int]]:
        return score(model, tokenizer, conversations, batch_size=batch_size)

    return score_fn, model_identity(model_name, adapter)
