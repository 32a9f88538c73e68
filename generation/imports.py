"""Importing a file of prompts (no responses) into a new prompt set, all or nothing, with the pair import's readers
and field checks: JSONL, JSON, CSV or Parquet; each record a string prompt or chat messages (``prompt``,
``instruction`` or ``messages``), an optional ``id`` and ``metadata`` (task type, difficulty, ...; unknown top-level
keys join it, as for pairs). Repeated prompts are skipped and counted. Every error names file, line and field."""

from __future__ import annotations

import hashlib
import os

import orjson
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from annotation.imports.errorlog import ErrorLog, FileRejected
from annotation.imports.fields import MISSING, FieldChecks, Row, kind_of
from annotation.imports.readers import FILE_FORMATS, check_file, detect_file_format, open_reader
from annotation.models import Project

from .models import Prompt, PromptSet

PROMPT_KEYS = frozenset({"prompt", "instruction", "messages", "id", "metadata"})
WRITE_CHUNK = 2_000


class PromptsRejected(Exception):
    """The file had errors and nothing was imported; ``errors`` holds the first 50 (each naming line and field)."""

    def __init__(self, filename: str, errors: list[dict], count: int) -> None:
        self.filename, self.errors, self.count = filename, errors, count
        super().__init__(filename)

    def __str__(self) -> str:
        lines = [f"{self.filename}: {self.count} error{'s' if self.count != 1 else ''}; nothing was imported."]
        lines += [e["message"] for e in self.errors]
        if self.count > len(self.errors):
            lines.append(f"... and {self.count - len(self.errors)} more errors")
        return "\n".join(lines)


def _record(checks: FieldChecks, line: int, data) -> Prompt | None:
    row = Row(line, checks.log)
    if not isinstance(data, dict):
        row.err(None, f"each record must be a JSON object, not {kind_of(data)}")
        return None
    key = next((k for k in ("prompt", "messages", "instruction") if k in data), None)
    if key is None:
        keys = ", ".join(sorted(data)[:12]) or "none"
        row.err(None, f"has no prompt: expected a 'prompt', 'messages' or 'instruction' field; found keys: {keys}")
        return None
    value = data[key] if data[key] is not None else MISSING
    if key == "messages":  # a list of turns by name: a plain string there is a mistake, not a one-turn prompt
        messages, is_chat = checks.messages(row, value, key), True
    else:
        messages, is_chat = checks.prompt(row, value, key)
    if is_chat and messages and messages[-1]["role"] == "assistant":
        row.err(f"{key}[{len(messages) - 1}].role", "the last message is the assistant's: a prompt ends with the user")
    external_id = checks.name(row, data.get("id"), "id")
    metadata = checks.metadata(row, data, PROMPT_KEYS)
    if not row.ok:
        return None
    digest = hashlib.sha256(orjson.dumps(messages)).hexdigest()
    return Prompt(external_id=external_id, messages=messages, is_chat=is_chat, metadata=metadata,
                  content_hash=digest, line=line)  # fmt: skip


def prompts_import(*, project: Project, path: str | os.PathLike, name: str, filename: str | None = None,
                   file_format: str | None = None, user=None) -> PromptSet:  # fmt: skip
    """A new prompt set named ``name`` from the file at ``path``. Raises PromptsRejected (nothing written) when any
    record is bad, ValidationError when the name is taken or the file cannot be read."""
    path = os.fspath(path)
    filename = filename or os.path.basename(path)
    name = (name or "").strip()[:100]
    if not name:
        raise ValidationError({"name": "Name the prompt set."})
    if file_format and file_format not in FILE_FORMATS:
        raise ValidationError({"file_format": f"Unknown file format {file_format!r}; use {', '.join(FILE_FORMATS)}."})
    log = ErrorLog(filename)
    checks = FieldChecks(log=log, max_chars=settings.IMPORT_MAX_FIELD_CHARS)
    prompts: dict[str, Prompt] = {}
    rows = 0
    try:
        size = check_file(path, filename, settings.IMPORT_MAX_BYTES)
        for line, data in open_reader(path, file_format or detect_file_format(path, filename), log, size):
            rows += 1
            prompt = _record(checks, line, data) if data is not None else None
            if prompt is not None and not log.count:
                prompts.setdefault(prompt.content_hash, prompt)  # the first of repeated prompts wins
    except FileRejected as exc:
        log.error(exc.line, None, exc.message, prefix=False)
    if rows == 0 and not log.count:
        log.error(None, None, "contains no records")
    if log.count:
        raise PromptsRejected(filename, log.errors, log.count)
    try:
        with transaction.atomic():
            prompt_set = PromptSet.objects.create(
                project=project, name=name, filename=filename[:255], rows_read=rows, prompts_created=len(prompts),
                duplicates_skipped=rows - len(prompts), created_by=user,
            )  # fmt: skip
            for prompt in prompts.values():
                prompt.prompt_set = prompt_set
            Prompt.objects.bulk_create(prompts.values(), batch_size=WRITE_CHUNK)
    except IntegrityError:
        raise ValidationError({"name": f"The project already has a prompt set named {name!r}."}) from None
    return prompt_set
