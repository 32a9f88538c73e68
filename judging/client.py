"""Talking to an OpenAI-compatible server: structured verdicts, response-format detection, one repair attempt.

Servers differ in how they constrain output. OpenAI and vLLM accept ``response_format={"type": "json_schema"}``
(what ``client.chat.completions.parse`` sends); llama.cpp's server answers that with HTTP 500 but accepts
``{"type": "json_object", "schema": ...}``; some accept only a plain ``json_object``. ``detect_mode`` tries them in
that order once per configuration and the caller stores the answer. Whatever the mode, the reply is validated with
the pydantic model; an invalid reply gets one repair request, then the item is unparseable (with the raw text).

Errors are classified for the caller: ``Transient`` (429, 5xx, timeouts, connection errors, after the openai
client's own retries with backoff and jitter; ``retry_after`` set when the server asked for a longer wait than the
client honours) and ``Fatal`` (401, 403, 404: the run cannot go on). A 400 on one item is that item's problem.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import openai
from pydantic import BaseModel, Field, ValidationError

from .outbound import OutboundRefused, guarded_http_client

REQUEST_TIMEOUT_SECONDS = 120.0
CLIENT_RETRIES = 3


class VerdictModel(BaseModel):
    """What the judge must answer. ``A`` is the response it was shown first."""

    winner: Literal["A", "B", "tie"]
    score_a: int = Field(ge=1, le=10)
    score_b: int = Field(ge=1, le=10)
    rationale: str = Field(max_length=8000)


def verdict_schema(max_tokens: int) -> dict:
    """The JSON schema sent to servers that take one. The verdict comes before the rationale, and the rationale is
    capped (about 3 characters a token, less the ~30 tokens of JSON around it) so a reply always fits in
    ``max_tokens``: a cut-off reply is not JSON at all."""
    return {
        "type": "object",
        "properties": {
            "winner": {"type": "string", "enum": ["A", "B", "tie"]},
            "score_a": {"type": "integer", "minimum": 1, "maximum": 10},
            "score_b": {"type": "integer", "minimum": 1, "maximum": 10},
            "rationale": {"type": "string", "maxLength": max(20, min(8000, (max_tokens - 30) * 3))},
        },
        "required": ["winner", "score_a", "score_b", "rationale"],
        "additionalProperties": False,
    }


class RatingModel(BaseModel):
    """What a judge answers when it rates one response on its own (generation candidates)."""

    score: int = Field(ge=1, le=10)
    rationale: str = Field(max_length=8000)


def rating_schema(max_tokens: int) -> dict:
    """Like verdict_schema: the score first, the rationale capped so the reply fits in ``max_tokens``."""
    return {
        "type": "object",
        "properties": {
            "score": {"type": "integer", "minimum": 1, "maximum": 10},
            "rationale": {"type": "string", "maxLength": max(20, min(8000, (max_tokens - 20) * 3))},
        },
        "required": ["score", "rationale"],
        "additionalProperties": False,
    }


REPAIR_PROMPT = (
    "Your previous reply could not be used: {problem}. Reply again with only a JSON object with the keys "
    '"winner" ("A", "B" or "tie"), "score_a" and "score_b" (integers from 1 to 10) and "rationale" (one sentence).'
)
RATING_REPAIR_PROMPT = (
    "Your previous reply could not be used: {problem}. Reply again with only a JSON object with the keys "
    '"score" (an integer from 1 to 10) and "rationale" (one sentence).'
)


@dataclass(frozen=True)
class Shape:
    """A structured reply: its pydantic model, the JSON schema sent to servers and the repair request."""

    name: str
    model: type[BaseModel]
    schema: Callable[[int], dict]
    repair: str


VERDICT = Shape("verdict", VerdictModel, verdict_schema, REPAIR_PROMPT)
RATING = Shape("rating", RatingModel, rating_schema, RATING_REPAIR_PROMPT)

MODES = ("json_schema", "json_object_schema", "json_object")


class JudgeError(Exception):
    def __init__(self, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.message, self.retry_after = message, retry_after


class Transient(JudgeError):
    """Worth trying again later (the run goes on)."""


class Fatal(JudgeError):
    """The configuration cannot work (bad key, unknown model): the run stops with this reason."""


class ItemRejected(JudgeError):
    """The server refused this one request (HTTP 400/422): recorded as unparseable, the run goes on."""


@dataclass
class Reply:
    content: str
    tokens_in: int
    tokens_out: int
    confidence: float | None


@dataclass
class Generated:
    """One sampled response (generation): its text, tokens and why it stopped ("stop", "length", ...)."""

    text: str
    tokens_in: int
    tokens_out: int
    finish_reason: str


@dataclass
class Parsed:
    verdict: BaseModel | None  # a VerdictModel, or a RatingModel for ratings
    raw: str
    tokens_in: int
    tokens_out: int
    confidence: float | None
    error: str = ""
    calls: int = 1  # HTTP requests it took (2 with a repair attempt)


def make_client(*, base_url: str, api_key_env: str) -> openai.OpenAI:
    """A client for the configuration. The key is read from the named environment variable on the worker and goes
    nowhere else; a local server without keys gets a placeholder."""
    key = os.environ.get(api_key_env, "") if api_key_env else ""
    if api_key_env and not key:
        raise Fatal(f"The environment variable {api_key_env} (the API key) is not set on this worker.")
    return openai.OpenAI(
        base_url=base_url, api_key=key or "not-needed", timeout=REQUEST_TIMEOUT_SECONDS, max_retries=CLIENT_RETRIES,
        http_client=guarded_http_client(),
    )  # fmt: skip


def _retry_after(exc: openai.APIStatusError) -> float | None:
    value = exc.response.headers.get("retry-after") if exc.response is not None else None
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and math.isfinite(seconds) and seconds > 0 else None


def classify(exc: Exception) -> JudgeError:
    """The run-level meaning of an exception raised by the openai client."""
    if isinstance(exc, openai.RateLimitError):
        return Transient(f"rate limited by the server (HTTP 429): {exc.message}", retry_after=_retry_after(exc))
    if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
        return Fatal(f"the server refused the credentials (HTTP {exc.status_code}): {exc.message}")
    if isinstance(exc, openai.NotFoundError):
        return Fatal(f"not found (HTTP 404; is the model name right?): {exc.message}")
    if isinstance(exc, (openai.BadRequestError, openai.UnprocessableEntityError)):
        return ItemRejected(f"the server rejected the request (HTTP {exc.status_code}): {exc.message}")
    if isinstance(exc, openai.APIStatusError):
        return Transient(f"server error (HTTP {exc.status_code}): {exc.message}", retry_after=_retry_after(exc))
    if isinstance(exc, openai.APITimeoutError):
        return Transient("the request timed out")
    if isinstance(exc, openai.APIConnectionError):
        if isinstance(exc.__cause__, OutboundRefused):
            return Fatal(str(exc.__cause__))
        return Transient(f"could not connect: {exc}")
    return Transient(f"{type(exc).__name__}: {exc}")


def _response_format(mode: str, max_tokens: int, shape: Shape = VERDICT) -> dict:
    if mode == "json_schema":
        # What chat.completions.parse(response_format=VerdictModel) sends; sent through create() so that an invalid
        # reply comes back as text for validation and repair instead of raising inside the client. OpenAI's strict
        # mode accepts no maxLength, so the rationale is left uncapped there.
        schema = shape.schema(max_tokens)
        schema["properties"]["rationale"] = {"type": "string"}
        return {"type": "json_schema", "json_schema": {"name": shape.name, "strict": True, "schema": schema}}
    if mode == "json_object_schema":
        return {"type": "json_object", "schema": shape.schema(max_tokens)}
    return {"type": "json_object"}


_WINNER_RE = re.compile(r'"winner"\s*:\s*"(A|B|tie)')


def winner_confidence(content: str, logprobs) -> float | None:
    """exp(logprob) of the token that carries the winner's value, where the server returned logprobs."""
    tokens = getattr(logprobs, "content", None) if logprobs is not None else None
    match = _WINNER_RE.search(content or "")
    if not tokens or match is None:
        return None
    target, position = match.start(1), 0
    for token in tokens:
        end = position + len(token.token)
        if position <= target < end:
            return math.exp(token.logprob)
        position = end
    return None


def complete(client: openai.OpenAI, *, model: str, messages: list[dict], mode: str, temperature: float,
             max_tokens: int, logprobs: bool, retries: int | None = None, shape: Shape = VERDICT) -> Reply:  # fmt: skip
    """One chat completion in the given mode. Raises openai exceptions (the caller classifies them)."""
    if retries is not None:
        client = client.with_options(max_retries=retries)
    kwargs = {"model": model, "messages": messages, "temperature": temperature, "max_tokens": max_tokens}
    if logprobs:
        kwargs.update(logprobs=True, top_logprobs=1)
    response = client.chat.completions.create(response_format=_response_format(mode, max_tokens, shape), **kwargs)
    choice = response.choices[0]
    content = choice.message.content or ""
    usage = response.usage
    return Reply(
        content=content,
        tokens_in=usage.prompt_tokens if usage else 0,
        tokens_out=usage.completion_tokens if usage else 0,
        confidence=winner_confidence(content, choice.logprobs) if logprobs else None,
    )


def parse_reply(content: str, shape: Shape = VERDICT) -> tuple[BaseModel | None, str]:
    """(the validated reply, "") or (None, why it is invalid)."""
    text = (content or "").strip()
    if text.startswith("```"):  # some models fence their JSON
        text = text.strip("`").removeprefix("json").strip()
    try:
        return shape.model.model_validate(json.loads(text)), ""
    except json.JSONDecodeError as exc:
        return None, f"not JSON ({exc.msg} at character {exc.pos})"
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'reply'}: {e['msg']}" for e in exc.errors()[:5])
        return None, f"JSON does not match the {shape.name} schema ({problems})"


def parse_verdict(content: str) -> tuple[VerdictModel | None, str]:
    return parse_reply(content, VERDICT)


def ask(client: openai.OpenAI, *, shape: Shape, model: str, messages: list[dict], mode: str, temperature: float,
        max_tokens: int, logprobs: bool) -> Parsed:  # fmt: skip
    """Ask for a structured reply; on an invalid one ask once more with the problem spelled out. Never raises for a
    bad reply (it comes back with ``verdict`` None and the raw text); raises openai exceptions for transport errors."""
    options = {"model": model, "mode": mode, "temperature": temperature, "max_tokens": max_tokens, "shape": shape}
    reply = complete(client, messages=messages, logprobs=logprobs, **options)
    value, problem = parse_reply(reply.content, shape)
    if value is not None:
        return Parsed(value, reply.content, reply.tokens_in, reply.tokens_out, reply.confidence)
    repair = [*messages, {"role": "assistant", "content": reply.content[:4000]},
              {"role": "user", "content": shape.repair.format(problem=problem)}]  # fmt: skip
    second = complete(client, messages=repair, logprobs=False, **options)
    tokens_in, tokens_out = reply.tokens_in + second.tokens_in, reply.tokens_out + second.tokens_out
    value, problem = parse_reply(second.content, shape)
    if value is not None:
        return Parsed(value, second.content, tokens_in, tokens_out, None, calls=2)
    raw = reply.content + "\n--- repair attempt ---\n" + second.content
    return Parsed(None, raw, tokens_in, tokens_out, None, error=problem, calls=2)


def judge_messages(client: openai.OpenAI, *, model: str, messages: list[dict], mode: str, temperature: float,
                   max_tokens: int, logprobs: bool) -> Parsed:  # fmt: skip
    """A verdict on a pair (see ``ask``)."""
    return ask(client, shape=VERDICT, model=model, messages=messages, mode=mode, temperature=temperature,
               max_tokens=max_tokens, logprobs=logprobs)  # fmt: skip


def generate(client: openai.OpenAI, *, model: str, messages: list[dict], temperature: float, top_p: float,
             max_tokens: int, seed: int | None) -> Generated:  # fmt: skip
    """One sampled response in plain text. Raises openai exceptions (the caller classifies them)."""
    kwargs = {"model": model, "messages": messages, "temperature": temperature, "top_p": top_p,
              "max_tokens": max_tokens}  # fmt: skip
    if seed is not None:
        kwargs["seed"] = seed
    response = client.chat.completions.create(**kwargs)
    if not response.choices:
        raise ItemRejected("the server answered with no choices")
    choice = response.choices[0]
    usage = response.usage
    return Generated(
        text=(choice.message.content if choice.message else "") or "",
        tokens_in=usage.prompt_tokens if usage else 0,
        tokens_out=usage.completion_tokens if usage else 0,
        finish_reason=choice.finish_reason or "",
    )


def detect_mode(client: openai.OpenAI, *, model: str, messages: list[dict], max_tokens: int) -> str:
    """The first response format the server accepts, trying json_schema, then json_object with a schema, then plain
    json_object. Probes are not retried. Raises Fatal for bad credentials or model, Transient if the server is down."""
    last: Exception | None = None
    for mode in MODES:
        try:
            complete(client, model=model, messages=messages, mode=mode, temperature=0.0, max_tokens=max_tokens,
                     logprobs=False, retries=0)  # fmt: skip
            return mode
        except openai.APIStatusError as exc:
            error = classify(exc)
            if isinstance(error, Fatal) or exc.status_code == 429:
                raise error from exc
            last = exc  # 400/422/500: this format is not supported here, try the next
        except (openai.APIConnectionError, openai.APITimeoutError) as exc:
            raise classify(exc) from exc
    raise ItemRejected(f"the server accepts none of the JSON response formats: {last}")


def detect_logprobs(client: openai.OpenAI, *, model: str, messages: list[dict], mode: str, max_tokens: int) -> bool:
    """Whether the server returns token logprobs in this mode (used for the verdict's confidence)."""
    try:
        complete(client, model=model, messages=messages, mode=mode, temperature=0.0, max_tokens=max_tokens,
                 logprobs=True, retries=0)  # fmt: skip
    except openai.APIStatusError as exc:
        if exc.status_code in (400, 422, 500):
            return False
        raise classify(exc) from exc
    except (openai.APIConnectionError, openai.APITimeoutError) as exc:
        raise classify(exc) from exc
    return True
