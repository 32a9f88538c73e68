"""A project's raw labels as one file (JSONL or Parquet), streamed, for a team's own analysis (issue 21).

One row per Label, every source (``human``: answered in Arbiter; ``external``: imported with the pair; judge verdicts
are not Labels and are not here), in label id order, with the columns of ``COLUMNS``:

- ``choice`` and ``criteria`` are in A/B terms as stored; ``shown_left`` is the response that was on the left
  ("A"/"B"; null for imported labels, which were never shown);
- ``strength`` is the stored 1-based step, ``strength_label`` its word in ``project.strength_scale`` (null without a
  scale or out of it);
- ``kind`` is the assignment's: regular, calibration (``Assignment.Kind.GOLD``), repeat or practice; a label without
  an assignment (imported) is ``imported``, so ``kind == "regular"`` selects only answers to pairs Arbiter served
  through the K-overlap pool (the ``source`` column says the same thing for imported labels: they always go together);
- ``annotator`` is the username, or the external annotator's name for imported labels; with ``pseudonymize`` both
  become ``annotator-<n>``, numbered in order of each one's first label in the dump (same person, same pseudonym,
  within one dump only: numbering may change if labels are deleted). Rationales are free text and are not scrubbed;
- text columns are as stored (empty string, not null, when there is none); times are UTC: ISO 8601 with "Z" in
  JSONL, ``timestamp[us, UTC]`` in Parquet. ``criteria`` is a JSON object in JSONL and its JSON text in Parquet
  (Parquet has no portable JSON column type; every reader can parse the string).

Memory stays bounded however many labels there are: rows come from one SQL statement (JOINs, no per-row query, no
model instance) through ``connection.chunked_cursor()`` (a PostgreSQL server-side cursor, as ``QuerySet.iterator``
uses), ``batch_size`` rows at a time, and each batch leaves as one chunk (JSONL lines, or one Parquet row group
drained from the writer's sink) and is dropped before the next one is fetched. Outside a transaction PostgreSQL
runs a server-side cursor WITH HOLD, which materialises the result on the server (not here) before the first fetch;
inside one, rows stream as fetched.
"""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from django.contrib.auth import get_user_model
from django.db import connection, transaction

from .models import Assignment, GuidelineVersion, Label, Pair, Project

CONTENT_TYPES = {"jsonl": "application/x-ndjson", "parquet": "application/vnd.apache.parquet"}

# What a dump adds to RSS follows the batch, not the project: +74 MiB at 20,000 rows, +160 MiB at 50,000 (1M labels,
# docs/PERFORMANCE.md); 20,000-row Parquet row groups compress as well as larger ones.
BATCH_ROWS = 20_000

_UTC_US = pa.timestamp("us", tz="UTC")
SCHEMA = pa.schema(
    [
        ("label_id", pa.int64()),
        ("pair_id", pa.int64()),
        ("pair_external_id", pa.string()),
        ("annotator", pa.string()),
        ("source", pa.string()),
        ("choice", pa.string()),
        ("shown_left", pa.string()),
        ("strength", pa.int16()),
        ("strength_label", pa.string()),
        ("rationale", pa.string()),
        ("criteria", pa.string()),
        ("time_on_item_ms", pa.int64()),
        ("guideline_version", pa.int64()),
        ("kind", pa.string()),
        ("served_at", _UTC_US),
        ("finished_at", _UTC_US),
        ("created_at", _UTC_US),
    ]
)
COLUMNS = tuple(SCHEMA.names)
_CRITERIA = COLUMNS.index("criteria")

KINDS = {
    Assignment.Kind.REGULAR: "regular",
    Assignment.Kind.GOLD: "calibration",
    Assignment.Kind.REPEAT: "repeat",
    Assignment.Kind.PRACTICE: "practice",
}
KIND_IMPORTED = "imported"


# Timestamps leave PostgreSQL ready to use: parsing them in Python (Django's time zone loader) took two thirds of
# the CPU of a dump. JSONL takes ISO 8601 text, Parquet microseconds since the epoch (exact: EXTRACT gives numeric).
# SQLite (development) hands back datetimes, which both writers take too.
_TIMESTAMP_SQL = {
    "jsonl": """to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')""",
    "parquet": "(EXTRACT(EPOCH FROM {}) * 1000000)::bigint",
}


def _sql(fmt: str) -> str:
    user = get_user_model()
    username = user._meta.get_field(user.USERNAME_FIELD).column
    timestamp = _TIMESTAMP_SQL[fmt] if connection.vendor == "postgresql" else "{}"
    served, finished, created = (timestamp.format(c) for c in ("a.served_at", "a.finished_at", "l.created_at"))
    return f"""
SELECT l.id, l.pair_id, p.external_id, l.annotator_id, u.{username}, l.external_annotator, l.source, l.choice,
       l.left_is_a, l.strength, l.rationale, l.criteria, l.time_on_item_ms, g.version, a.kind, {served},
       {finished}, {created}
FROM {Label._meta.db_table} l
JOIN {Pair._meta.db_table} p ON p.id = l.pair_id
LEFT JOIN {Assignment._meta.db_table} a ON a.id = l.assignment_id
LEFT JOIN {user._meta.db_table} u ON u.id = l.annotator_id
LEFT JOIN {GuidelineVersion._meta.db_table} g ON g.id = l.guideline_version_id
WHERE l.project_id = %s
ORDER BY l.id
"""


def label_dump(project: Project, *, fmt: str, pseudonymize: bool, batch_size: int = BATCH_ROWS) -> Iterator[bytes]:
    """The project's labels as ``fmt`` (a key of CONTENT_TYPES), as a generator of byte chunks. An unknown format
    raises ValueError here, before anything is read, so a view can answer 400 before it starts a response."""
    if fmt not in CONTENT_TYPES:
        raise ValueError(f"Unknown label dump format {fmt!r}; choose one of: {', '.join(CONTENT_TYPES)}.")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1.")
    rows = _row_batches(project, fmt, pseudonymize, batch_size)
    return _jsonl(rows) if fmt == "jsonl" else _parquet(rows)


def _batches(project_id: int, fmt: str, batch_size: int) -> Iterator[list[tuple]]:
    """The SELECT's rows, batch_size at a time, from a server-side cursor (closed if the consumer stops early).
    Inside a transaction PostgreSQL streams the cursor; outside one it materialises the whole result first (a
    WITH HOLD cursor: the first chunk of 1M labels after ~5 s instead of ~0.4 s, docs/PERFORMANCE.md)."""
    with transaction.atomic(), connection.chunked_cursor() as cursor:
        cursor.execute(_sql(fmt), [project_id])
        while batch := cursor.fetchmany(batch_size):
            yield batch
            del batch  # not alive while the next one is fetched


def _row_batches(project: Project, fmt: str, pseudonymize: bool, batch_size: int) -> Iterator[list[tuple]]:
    """Output rows (COLUMNS order), one list per fetched batch."""
    scale = list(project.strength_scale or [])
    pseudonyms: dict[tuple, str] = {}
    for batch in _batches(project.pk, fmt, batch_size):
        out = []
        for (label_id, pair_id, external_id, user_id, username, external_name, source, choice, left_is_a, strength,
             rationale, criteria, time_ms, version, kind, served_at, finished_at, created_at) in batch:  # fmt: skip
            if pseudonymize:
                who = ("user", user_id) if user_id is not None else ("external", external_name)
                annotator = pseudonyms.get(who)
                if annotator is None:
                    annotator = pseudonyms[who] = f"annotator-{len(pseudonyms) + 1}"
            else:
                annotator = username if user_id is not None else external_name
            out.append((
                label_id, pair_id, external_id, annotator, source, choice,
                None if left_is_a is None else ("A" if left_is_a else "B"),
                strength, scale[strength - 1] if strength and strength <= len(scale) else None,
                rationale, criteria, time_ms, version,
                KIND_IMPORTED if kind is None else KINDS.get(kind, kind),
                served_at, finished_at, created_at,
            ))  # fmt: skip
        del batch
        yield out
        del out


# SQLite hands back naive datetimes (UTC): orjson then writes them with the "Z" too.
_JSON_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC | orjson.OPT_APPEND_NEWLINE


def _jsonl(row_batches: Iterator[list[tuple]]) -> Iterator[bytes]:
    dumps, fragment = orjson.dumps, orjson.Fragment
    for rows in row_batches:
        # Lines go straight into one buffer: a bytes object from orjson keeps its whole working allocation (~8 KiB
        # for a ~450-byte line), so a list of a batch's lines took 20x its size (170 MB per 20,000 rows).
        chunk = bytearray()
        for row in rows:
            record = dict(zip(COLUMNS, row, strict=True))
            # criteria is JSON text from the database: embedded as it is, never parsed and serialised again
            record["criteria"] = fragment(row[_CRITERIA] or "{}")
            chunk += dumps(record, option=_JSON_OPTIONS)
        del rows
        yield bytes(chunk)
        del chunk


class _Sink:
    """A write-only file for ParquetWriter whose bytes are taken out after each row group. tell() keeps counting
    from the start of the file: the footer records each row group's offset from it."""

    closed = False

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.position = 0

    def write(self, data) -> int:
        data = bytes(data)
        self.parts.append(data)
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        data, self.parts = b"".join(self.parts), []
        return data


def _parquet(row_batches: Iterator[list[tuple]]) -> Iterator[bytes]:
    sink = _Sink()
    # the fixed schema is written even with no rows: an empty project is a valid file with every column
    writer = pq.ParquetWriter(sink, SCHEMA, compression="zstd")
    try:
        for rows in row_batches:
            columns = zip(*rows, strict=True)
            arrays = [pa.array(values, type=field.type) for values, field in zip(columns, SCHEMA, strict=True)]
            writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=SCHEMA), row_group_size=len(rows))
            del rows, columns, arrays
            if chunk := sink.take():
                yield chunk
                del chunk
    finally:
        writer.close()
    yield sink.take()
