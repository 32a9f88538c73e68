"""What a lead should know about a candidate before it becomes training data: empty, cut off at max_tokens, the
same or nearly the same as another candidate of its prompt, or giving away which model wrote it (FastChat filters
such answers out of Chatbot Arena because they break blinding)."""

from __future__ import annotations

import re
from difflib import SequenceMatcher

NEAR_DUPLICATE_RATIO = 0.95

# Product names that only a model's self-description uses: matched anywhere (whole word, any case).
_PRODUCTS = (
    r"chat\s?gpt", r"gpt-?(?:3\.5|4(?:\.\d)?)(?:-?turbo|o)?", r"openai", r"claude", r"anthropic", r"smollm\d*",
    r"deepseek", r"qwen", r"mixtral", r"vicuna", r"ernie\s+bot",
)  # fmt: skip
# Names that are also ordinary words (a llama, the mistral, Google Maps): only in a self-description.
_AMBIGUOUS = (
    r"llama\s?\d*", r"gemini", r"bard", r"mistral(?:\s+ai)?", r"gemma", r"phi-?\d", r"google(?:\s+deepmind)?",
    r"meta(?:\s+ai)?", r"microsoft", r"alibaba(?:\s+cloud)?", r"hugging\s?face",
)  # fmt: skip
_SELF = (
    r"(?:i\s+am|i'm|as|called|named|(?:created|developed|trained|built|made)\s+by)\s+"
    r"(?:an?\s+)?(?:ai\s+)?(?:(?:large\s+)?language\s+model\s+|assistant\s+)?(?:called\s+|named\s+)?"
)
IDENTITY_RE = re.compile(
    r"\b(" + "|".join(_PRODUCTS) + r")\b|\b" + _SELF + r"(" + "|".join(_AMBIGUOUS) + r")\b", re.IGNORECASE
)


def identity_leak(text: str) -> str:
    """The model or vendor name the text gives away ("" when none)."""
    match = IDENTITY_RE.search(text or "")
    return (match.group(1) or match.group(2))[:100] if match else ""


def is_empty(text: str) -> bool:
    return not (text or "").strip()


def _normal(text: str) -> str:
    return " ".join((text or "").lower().split())


def duplicate_of(text: str, earlier: list[tuple[int, str]]) -> int | None:
    """The id of the first earlier candidate (id, text) of the same prompt with the same text up to case and
    whitespace, or a SequenceMatcher ratio of at least 0.95; None when it is new."""
    normal = _normal(text)
    for candidate_id, other in earlier:
        other_normal = _normal(other)
        if normal == other_normal:
            return candidate_id
        matcher = SequenceMatcher(None, normal, other_normal, autojunk=False)
        if matcher.real_quick_ratio() >= NEAR_DUPLICATE_RATIO and matcher.ratio() >= NEAR_DUPLICATE_RATIO:
            return candidate_id
    return None
