"""The texts of a project's pairs, read in batches in pair id order: curation's text steps and the export writers
read them this way, so memory holds a few batches of texts however many pairs there are."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from queue import Empty, Full, Queue

import numpy as np
import orjson
from django.db import connection
from django.db.models import F, TextField
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast

from annotation.models import Pair, Project
from judging.prompts import render_conversation

from .steps import TextReader

TEXT_BATCH = 5_000  # pairs whose texts are read per statement: a few MB of Python strings
READ_AHEAD = 2  # batches of texts a background reader may hold ready (see pair_text_reader)


def _simple_prompt_sql() -> str:
    """SQL for the text of a prompt that is one message, from the user (or without a role), whose content is a
    string: render_conversation gives that content as it is. NULL for any other prompt."""
    if connection.vendor == "postgresql":
        return """CASE WHEN jsonb_typeof(prompt) <> 'array' THEN NULL
                       WHEN jsonb_array_length(prompt) = 1
                            AND COALESCE(prompt -> 0 -> 'role', '"user"'::jsonb) = '"user"'::jsonb
                            AND jsonb_typeof(prompt -> 0 -> 'content') = 'string'
                       THEN prompt -> 0 ->> 'content' END"""
    return """CASE WHEN json_type(prompt) <> 'array' THEN NULL
                   WHEN json_array_length(prompt) = 1
                        AND (json_type(prompt, '$[0].role') IS NULL OR (json_type(prompt, '$[0].role') = 'text'
                                                                        AND json_extract(prompt, '$[0].role') = 'user'))
                        AND json_type(prompt, '$[0].content') = 'text'
                   THEN json_extract(prompt, '$[0].content') END"""


def _text_columns(wanted: tuple[str, ...]) -> dict:
    """The annotations pair_text_reader selects for the wanted fields."""
    columns = {}
    for field in wanted:
        if field == "prompt":
            columns["t_prompt"] = Cast("prompt", TextField())
        elif field == "prompt_text":
            simple = _simple_prompt_sql()
            columns["t_simple"] = RawSQL(simple, [], output_field=TextField())
            columns["t_other"] = RawSQL(f"CASE WHEN ({simple}) IS NULL THEN CAST(prompt AS TEXT) END", [],
                                        output_field=TextField())  # fmt: skip
        elif field in ("response_a", "response_b"):
            columns[f"t_{field}"] = F(field)
        else:
            raise ValueError(f"unknown text field {field!r}")
    return columns


def pair_text_reader(project: Project, all_ids: np.ndarray, *, batch: int | None = None,
                     read_ahead: bool | None = None) -> TextReader:  # fmt: skip
    """A reader of the texts of some of the project's pairs (``all_ids``: all of them, sorted), ``batch`` pairs per
    statement (default TEXT_BATCH), in pair id order. A batch whose pairs are most of an id range is read as that
    range (an index range scan; the other pairs' rows are skipped here), otherwise by id list. Fields: ``prompt``
    (the message list: JSON text parsed with orjson), ``prompt_text`` (judging.prompts.render_conversation of it; the
    database gives the text of a one-message prompt itself, so most prompts are never parsed here), ``response_a``
    and ``response_b``.

    Read-ahead: on PostgreSQL, outside a transaction, a background thread with its own connection reads the next
    batches (at most READ_AHEAD waiting) while the caller works on the current one: psycopg releases the GIL while
    the server (another process, another core) runs the query and sends the rows. Inside a transaction
    (``atomic()``, and the tests' transactions) another connection would not see the uncommitted pairs, so the
    batches are read on the caller's connection, one after the other. ``read_ahead`` forces either way."""
    batch = batch or TEXT_BATCH

    def batches(pair_ids: np.ndarray, wanted: tuple[str, ...]) -> Iterator[tuple[np.ndarray, dict[str, list]]]:
        columns = _text_columns(wanted)
        for start in range(0, len(pair_ids), batch):
            chunk = pair_ids[start : start + batch]
            lo, hi = int(chunk[0]), int(chunk[-1])
            span = np.searchsorted(all_ids, hi, side="right") - np.searchsorted(all_ids, lo)
            pairs = Pair.objects.filter(project=project)
            if span <= 2 * len(chunk):
                pairs = pairs.filter(pk__gte=lo, pk__lte=hi)
            else:
                pairs = pairs.filter(pk__in=chunk.tolist())
            query = pairs.annotate(**columns).order_by("pk").values_list("pk", *columns)
            sql, params = query.query.sql_with_params()
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                rows = cursor.fetchall()
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            keep = np.isin(ids, chunk, assume_unique=True)
            if int(keep.sum()) != len(chunk):
                raise RuntimeError("pairs were deleted while their texts were being read")
            if not keep.all():
                rows = [r for r, k in zip(rows, keep.tolist(), strict=True) if k]
            values = dict(zip(columns, (list(c) for c in list(zip(*rows, strict=True))[1:]), strict=True))
            out = {}
            for field in wanted:
                if field == "prompt":
                    out[field] = [orjson.loads(p) for p in values["t_prompt"]]
                elif field == "prompt_text":  # rendered by the database, or here from the JSON where it is not simple
                    simple, other = values["t_simple"], values["t_other"]
                    out[field] = [text if text is not None else render_conversation(orjson.loads(json))
                                  for text, json in zip(simple, other, strict=True)]  # fmt: skip
                else:
                    out[field] = values[f"t_{field}"]
            yield chunk, out

    def read(pair_ids: np.ndarray, wanted: tuple[str, ...]) -> Iterator[tuple[np.ndarray, dict[str, list]]]:
        ahead = read_ahead
        if ahead is None:
            ahead = connection.vendor == "postgresql" and not connection.in_atomic_block
        if ahead and len(pair_ids) > batch:
            return _read_ahead(lambda: batches(pair_ids, wanted))
        return batches(pair_ids, wanted)

    return read


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


def _read_ahead(produce: Callable[[], Iterator], depth: int = READ_AHEAD) -> Iterator:
    """The items of ``produce()``, made by a background thread (with its own database connection, closed when it
    ends) at most ``depth`` ahead of the caller. An error in the thread is raised in the caller; a caller that
    stops early stops the thread."""
    queue: Queue = Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                queue.put(item, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def work() -> None:
        try:
            for item in produce():
                if not put(item):
                    return
            put(end)
        except BaseException as exc:  # handed to the caller
            put(_Failed(exc))
        finally:
            connection.close()  # this thread's connection

    def items() -> Iterator:
        thread = threading.Thread(target=work, name="pair-text-reader", daemon=True)
        thread.start()
        try:
            while True:
                try:
                    item = queue.get(timeout=1.0)
                except Empty:
                    if not thread.is_alive() and queue.empty():
                        raise RuntimeError("the text reader thread ended without a result") from None
                    continue
                if item is end:
                    return
                if isinstance(item, _Failed):
                    raise item.error
                yield item
        finally:
            stop.set()
            thread.join()

    return items()
