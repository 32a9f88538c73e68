"""Field checks shared by every record format, and the PairRecord they produce. Each check returns a usable value,
or logs an error naming the line and field (marking the row bad) when the input is not one."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import orjson

from .errorlog import ErrorLog

ROLES = frozenset({"system", "user", "assistant"})
NAME_MAX = 200  # external_id, model names, annotator names
_CHOICE_WORDS = {"a": "A", "b": "B", "tie": "tie", "both_bad": "both_bad"}
_CHOICE_NUMBERS = {1: "A", 2: "B", 1.5: "tie"}
MISSING = object()


@dataclass(slots=True)
class PairRecord:
    line: int
    external_id: str
    prompt: list[dict]
    prompt_json: bytes
    prompt_is_chat: bool
    response_a: str
    response_b: str
    model_a: str
    model_b: str
    metadata: dict
    metadata_json: bytes
    source_preference: str
    content_hash: str
    shuffle_key: int
    labels: list[tuple[str, str]]  # (external annotator, choice)
    gold: str = ""  # expected answer of a calibration pair: "A", "B" or "tie"
    gold_explanation: str = ""  # why; shown to annotators after a practice item


def content_hash(prompt: list[dict], response_a: str, response_b: str) -> str:
    """sha256 of the canonical JSON of [prompt messages, sorted([response_a, response_b])]: A/B order never matters."""
    return _hash(orjson.dumps(prompt), response_a, response_b)


def _hash(prompt_json: bytes, a: str, b: str) -> str:
    # Byte-for-byte orjson.dumps([prompt, sorted([a, b])]), without dumping the prompt twice.
    return hashlib.sha256(b"[" + prompt_json + b"," + orjson.dumps(sorted((a, b))) + b"]").hexdigest()


def kind_of(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    return {str: "a string", list: "an array", dict: "an object"}.get(type(value), type(value).__name__)


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class Row:
    """One raw row being normalised: its line, and whether any of its fields was bad."""

    __slots__ = ("line", "log", "ok", "external_id")

    def __init__(self, line: int, log: ErrorLog) -> None:
        self.line, self.log, self.ok, self.external_id = line, log, True, ""

    def err(self, field: str | None, message: str) -> None:
        self.ok = False
        self.log.error(self.line, field, message)


class FieldChecks:
    """Checks for the fields every format shares, plus make(), which turns checked values into a PairRecord."""

    def __init__(self, *, log: ErrorLog, max_chars: int) -> None:
        self.log = log
        self.max_chars = max_chars
        self.empty_responses = 0
        self.first_empty: tuple[int, str] | None = None

    def finish(self) -> None:
        """Log the warnings that are counted rather than repeated on every line."""
        if self.empty_responses:
            line, field = self.first_empty
            where = f"first: {self.log.unit} {line}, field '{field}'"
            self.log.warn(None, None, f"{self.empty_responses} empty responses ({where}) were imported as they are")

    def text(self, row: Row, value, field: str, *, required: bool = True, limit: int | None = None) -> str:
        if value is MISSING or value is None:
            if required:
                row.err(
                    field, "must be a non-empty string; " + ("the field is missing" if value is MISSING else "got null")
                )
            return ""
        if not isinstance(value, str):
            row.err(field, f"must be a{' non-empty' if required else ''} string, not {kind_of(value)}")
            return ""
        if required and (not value or value.isspace()):
            row.err(field, "must be a non-empty string")
            return ""
        max_len = limit or self.max_chars
        if len(value) > max_len:
            setting = "" if limit else " (IMPORT_MAX_FIELD_CHARS)"
            row.err(field, f"is {len(value):,} characters long; the limit is {max_len:,}{setting}")
            return ""
        if "\x00" in value:
            row.err(field, "contains a NUL character (\\u0000), which cannot be stored")
            return ""
        return value

    def response(self, row: Row, value, field: str) -> str:
        """Like text(), but an empty string is a real (if poor) answer: AlpacaEval has models that said nothing."""
        if isinstance(value, str) and (not value or value.isspace()):
            self._empty(row, field)
            return value
        return self.text(row, value, field)

    def _empty(self, row: Row, field: str) -> None:
        self.empty_responses += 1
        if self.first_empty is None:
            self.first_empty = (row.line, field)

    def name(self, row: Row, value, field: str) -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        return self.text(row, value, field, required=False, limit=NAME_MAX)

    def messages(self, row: Row, value, field: str) -> list[dict]:
        if not isinstance(value, list) or not value:
            row.err(field, f"must be a non-empty list of {{role, content}} messages, not {kind_of(value)}")
            return []
        messages = []
        for i, message in enumerate(value):
            where = f"{field}[{i}]"
            if not isinstance(message, dict):
                row.err(where, f"must be an object with 'role' and 'content', not {kind_of(message)}")
                continue
            role = message.get("role", MISSING)
            if not isinstance(role, str) or role not in ROLES:
                shown = "missing" if role is MISSING else _show(role)
                row.err(f"{where}.role", f"must be one of system, user, assistant, not {shown}")
                continue
            content = self.text(row, message.get("content", MISSING), f"{where}.content", required=role == "user")
            messages.append({"role": role, "content": content})
        return messages

    def prompt(self, row: Row, value, field: str = "prompt") -> tuple[list[dict], bool]:
        if isinstance(value, list):
            return self.messages(row, value, field), True
        return [{"role": "user", "content": self.text(row, value, field)}], False

    def labels(self, row: Row, value) -> list[tuple[str, str]]:
        if value is MISSING or value is None:
            return []
        if not isinstance(value, list):
            row.err("labels", f"must be a list of {{annotator, preference}} objects, not {kind_of(value)}")
            return []
        labels, seen = [], set()
        for i, item in enumerate(value):
            where = f"labels[{i}]"
            if not isinstance(item, dict):
                row.err(where, f"must be an object with 'annotator' and 'preference', not {kind_of(item)}")
                continue
            annotator = self.text(row, item.get("annotator", MISSING), f"{where}.annotator", limit=NAME_MAX)
            preference = item.get("preference", MISSING)
            if preference is None:
                self.log.warn(row.line, f"{where}.preference", "the preference is null; this label was skipped")
                continue
            if isinstance(preference, str):
                choice = _CHOICE_WORDS.get(preference.strip().lower())
            elif isinstance(preference, (int, float)) and not isinstance(preference, bool):
                choice = _CHOICE_NUMBERS.get(preference)
            else:
                choice = None
            if choice is None:
                shown = "missing" if preference is MISSING else _show(preference)
                row.err(f"{where}.preference", f"must be 1 or 'A', 2 or 'B', 1.5 or 'tie', or 'both_bad', not {shown}")
            elif annotator in seen:
                row.err(f"{where}.annotator", f"repeats annotator {annotator!r}; one label per annotator and pair")
            elif annotator:
                seen.add(annotator)
                labels.append((annotator, choice))
        return labels

    def metadata(self, row: Row, data: dict, known: frozenset) -> dict:
        """The record's `metadata` object merged with its unknown top-level keys (e.g. AlpacaEval's `source`)."""
        meta = data.get("metadata")
        if meta is None:
            meta = {}
        elif not isinstance(meta, dict):
            row.err("metadata", f"must be an object, not {kind_of(meta)}")
            return {}
        extras = {k: v for k, v in data.items() if k not in known}
        if not extras and not meta:
            return meta
        meta = {**extras, **meta}
        where = "metadata" + (f" (with the extra fields {', '.join(sorted(extras)[:5])})" if extras else "")
        try:
            dumped = orjson.dumps(meta)
        except TypeError as exc:
            reason = (
                "is nested more than 254 levels deep" if "ecursion" in str(exc) else f"cannot be stored as JSON ({exc})"
            )
            row.err("metadata", f"{where} {reason}")
            return {}
        if len(dumped) > self.max_chars:
            row.err("metadata", f"{where} is {len(dumped):,} characters as JSON; the limit is {self.max_chars:,}")
        elif b"\\u0000" in dumped:
            row.err("metadata", f"{where} contains a NUL character (\\u0000), which cannot be stored")
        return meta

    def make(
        self,
        row: Row,
        prompt: list[dict],
        is_chat: bool,
        a: str,
        b: str,
        model_a: str,
        model_b: str,
        meta: dict,
        *,
        labels: list[tuple[str, str]] = (),
        source_preference: str = "",
        extra: dict | None = None,
        id_suffix: str = "",
        gold: str = "",
        gold_explanation: str = "",
    ) -> PairRecord | None:
        """The record for checked values, or None if the row had an error (already logged)."""
        if not row.ok:
            return None
        if (not a or a.isspace()) and (not b or b.isspace()):
            row.err("response_b", "both responses are empty")
            return None
        if extra:
            meta = {**meta, **extra}
        external_id = row.external_id
        if external_id and id_suffix:
            external_id = (external_id + id_suffix)[:NAME_MAX]
        prompt_json = orjson.dumps(prompt)
        digest = _hash(prompt_json, a, b)
        return PairRecord(
            line=row.line,
            external_id=external_id,
            prompt=prompt,
            prompt_json=prompt_json,
            prompt_is_chat=is_chat,
            response_a=a,
            response_b=b,
            model_a=model_a,
            model_b=model_b,
            metadata=meta,
            metadata_json=orjson.dumps(meta) if meta else b"{}",
            source_preference=source_preference,
            content_hash=digest,
            shuffle_key=int(digest[:8], 16) & 0x7FFFFFFF,
            labels=list(labels),
            gold=gold,
            gold_explanation=gold_explanation,
        )
