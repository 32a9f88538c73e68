"""The judge's prompt: a default template and the rendering of one (pair, order) into chat messages.

Placeholders (written in braces): {guidelines} {criteria} {prompt} {response_a} {response_b}. ``response_a`` is the
response the judge sees first, whichever of the pair's responses that is in this order. Substitution is a single
pass over the template, so braces inside the substituted texts are never interpreted.
"""

from __future__ import annotations

import re

DEFAULT_SYSTEM = (
    "You are an impartial judge of AI assistant responses. You compare two responses to the same conversation and "
    "decide which one is better. Ignore the order in which they are shown and their length; judge only what they say."
)

DEFAULT_TEMPLATE = """Guidelines for this project:
{guidelines}
{criteria}
[Conversation]
{prompt}

[Response A]
{response_a}

[Response B]
{response_b}

Compare the two responses. Reply with a JSON object only: {"winner": "A", "B" or "tie", "score_a": integer 1-10,
"score_b": integer 1-10, "rationale": one or two sentences}."""

PLACEHOLDERS = ("guidelines", "criteria", "prompt", "response_a", "response_b")
_PLACEHOLDER_RE = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")


def render_conversation(messages: list[dict]) -> str:
    if len(messages) == 1 and messages[0].get("role", "user") == "user":
        return messages[0].get("content", "")
    return "\n\n".join(f"{m.get('role', 'user').upper()}: {m.get('content', '')}" for m in messages)


def render_messages(*, system: str, template: str, guidelines: str, criteria: list[str], prompt: list[dict],
                    first: str, second: str) -> list[dict]:  # fmt: skip
    values = {
        "guidelines": guidelines.strip() or "(none)",
        "criteria": ("Criteria to weigh: " + ", ".join(criteria) + "\n") if criteria else "",
        "prompt": render_conversation(prompt),
        "response_a": first,
        "response_b": second,
    }
    user = _PLACEHOLDER_RE.sub(lambda m: values[m.group(1)], template)
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def template_problems(template: str) -> list[str]:
    """What is wrong with a template a lead wrote (empty when it is usable)."""
    missing = [p for p in ("prompt", "response_a", "response_b") if "{" + p + "}" not in template]
    return [f"the template must contain {{{p}}}" for p in missing]


RATING_SYSTEM = (
    "You are an impartial judge of AI assistant responses. You rate one response to a conversation on its own, on a "
    "scale from 1 (useless or harmful) to 10 (excellent). Judge only what it says, not its length."
)

RATING_TEMPLATE = """Guidelines for this project:
{guidelines}
{criteria}
[Conversation]
{prompt}

[Response]
{response}

Rate the response. Reply with a JSON object only: {"score": integer 1-10, "rationale": one or two sentences}."""

_RATING_RE = re.compile(r"\{(guidelines|criteria|prompt|response)\}")


def render_rating_messages(*, guidelines: str, criteria: list[str], prompt: list[dict], response: str) -> list[dict]:
    """The messages that ask a judge to rate one response (single pass, as render_messages)."""
    values = {
        "guidelines": guidelines.strip() or "(none)",
        "criteria": ("Criteria to weigh: " + ", ".join(criteria) + "\n") if criteria else "",
        "prompt": render_conversation(prompt),
        "response": response,
    }
    user = _RATING_RE.sub(lambda m: values[m.group(1)], RATING_TEMPLATE)
    return [{"role": "system", "content": RATING_SYSTEM}, {"role": "user", "content": user}]
