"""What a reward model scores: a prompt and a response as one conversation. Shared by the scorer's callers and the
training runner (a reward model is trained on exactly what it will be asked to score); no Django, no torch."""

from __future__ import annotations


def conversation(prompt, response) -> list[dict]:
    """The prompt (text, or chat messages) with the response as the assistant's turn (a text, or a conversational
    export's assistant message list)."""
    messages = list(prompt) if isinstance(prompt, list) else [{"role": "user", "content": str(prompt)}]
    reply = list(response) if isinstance(response, list) else [{"role": "assistant", "content": str(response)}]
    return [*messages, *reply]
