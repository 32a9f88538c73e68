"""File formats -> raw rows. Each reader streams: it never holds more than one record batch in memory.

A reader yields ``(number, data)``: the 1-based line (JSONL, CSV), item (JSON array) or row (Parquet) and the
parsed object, or ``None`` when the row could not be parsed (the reason is already in the ErrorLog).
"""

from __future__ import annotations

import csv
import mmap
import os
import re
from collections.abc import Iterator

import orjson

from .errorlog import ErrorLog, FileRejected, human_size

FILE_FORMATS = ("jsonl", "json", "csv", "parquet")
UTF8_BOM = b"\xef\xbb\xbf"
_WIDE_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)
_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
# CSV cells that hold JSON (a list or an object) rather than text.
CSV_JSON_COLUMNS = frozenset({"labels", "metadata", "completions", "ratings"})
CSV_MAYBE_MESSAGES = frozenset({"prompt", "chosen", "rejected"})
# Empty cells count as missing, except in these, where "" is kept (an empty response is data; an empty prompt is
# reported as empty rather than missing).
CSV_TEXT_COLUMNS = frozenset({"prompt", "instruction", "response_a", "response_b", "chosen", "rejected"})
# A JSON array is split into items with this tokenizer (strings are skipped whole, so brackets inside them don't
# count); each item is then parsed by orjson on its own.
_JSON_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},]', re.DOTALL)


def _head(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read(64)


def check_file(path: str, filename: str, max_bytes: int) -> int:
    """Size and encoding checks made before anything is parsed. Returns the size in bytes."""
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise FileRejected(f"{filename}: cannot read the file ({exc.strerror}).") from exc
    if size > max_bytes:
        raise FileRejected(
            f"{filename} is {human_size(size)}; the limit is {human_size(max_bytes)} (IMPORT_MAX_BYTES)."
        )
    head = _head(path)
    for bom, encoding in _WIDE_BOMS:
        if head.startswith(bom):
            raise FileRejected(
                f"{filename}, line 1: the file is {encoding} (byte-order mark); save the file as UTF-8.", 1
            )
    return size


def detect_file_format(path: str, filename: str) -> str:
    """From the extension (of the shown name, then of the stored path), then from the first bytes."""
    for name in (filename, path):
        ext = os.path.splitext(name)[1].lower()
        if ext in _EXTENSIONS:
            return _EXTENSIONS[ext]
    head = _head(path)
    if head.startswith(b"PAR1"):
        return "parquet"
    text = head.removeprefix(UTF8_BOM).lstrip()
    if text.startswith(b"["):
        return "json"
    if text.startswith(b"{") or os.path.splitext(filename)[1].lower() == ".json":
        return "jsonl"
    return "csv"


def _bad_bytes(chunk: bytes) -> str | None:
    """Why bytes that orjson refused are not text at all (NUL, invalid UTF-8), or None if they are."""
    nul = chunk.find(b"\x00")
    if nul >= 0:
        return f"contains a NUL byte at column {nul + 1}; the file looks binary or is not UTF-8"
    try:
        chunk.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"not valid UTF-8 (byte 0x{chunk[exc.start]:02x} at column {exc.start + 1}); save the file as UTF-8"
    return None


def _json_error(exc: orjson.JSONDecodeError) -> str:
    if "depth" in exc.msg or "recursion" in exc.msg:
        return f"invalid JSON: nested deeper than 1024 levels (column {exc.colno})"
    return f"invalid JSON: {exc.msg} (column {exc.colno})"


class Reader:
    unit = "line"

    def __init__(self, path: str, log: ErrorLog, total_bytes: int) -> None:
        self.path = path
        self.log = log
        self.total_bytes = total_bytes
        self.bytes_read = 0
        log.unit = self.unit

    def __iter__(self) -> Iterator[tuple[int, object]]:
        raise NotImplementedError


class JsonlReader(Reader):
    def __iter__(self):
        blank = 0
        loads, decode_error = orjson.loads, orjson.JSONDecodeError
        with open(self.path, "rb") as f:
            for number, line in enumerate(f, 1):
                self.bytes_read += len(line)
                if number == 1 and line.startswith(UTF8_BOM):
                    line = line[3:]
                try:
                    yield number, loads(line)
                except decode_error as exc:
                    if not line.strip():
                        blank += 1
                        continue
                    self.log.error(number, None, _bad_bytes(line) or _json_error(exc))
                    yield number, None
        if blank:
            self.log.warn(None, None, f"skipped {blank} empty line{'s' if blank != 1 else ''}")


class JsonArrayReader(Reader):
    unit = "item"

    def __iter__(self):
        if self.total_bytes == 0:
            return
        with open(self.path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            yield from self._items(buf)

    def _items(self, buf):
        start = 3 if buf[:3] == UTF8_BOM else 0
        opening = re.compile(rb"\s*\[").match(buf, start)
        if not opening:
            self.log.error(None, None, "a .json file must hold one JSON array of objects (or use JSON Lines)")
            return
        depth, number, seg_start = 1, 0, opening.end()
        for token in _JSON_TOKEN.finditer(buf, seg_start):
            ch = buf[token.start()]
            if ch == 0x22:  # a string
                continue
            if ch in (0x5B, 0x7B):  # [ {
                depth += 1
                continue
            if ch in (0x5D, 0x7D):  # ] }
                depth -= 1
                if depth:
                    continue
            elif depth != 1:  # a comma inside an item
                continue
            segment = buf[seg_start : token.start()]
            seg_start = token.end()
            self.bytes_read = token.end()
            if depth == 0 and number == 0 and not segment.strip():
                break  # an empty array
            number += 1
            yield number, self._parse(number, segment)
            if depth == 0:
                break
        else:
            self.log.error(number + 1, None, "the file ends before the JSON array is closed with ']'")
            return
        if buf[seg_start:].strip():
            self.log.error(number, None, "unexpected content after the closing ']' of the JSON array")
        self.bytes_read = self.total_bytes

    def _parse(self, number: int, segment: bytes):
        try:
            return orjson.loads(segment)
        except orjson.JSONDecodeError as exc:
            if not segment.strip():
                self.log.error(number, None, "invalid JSON: an empty item (a stray or trailing comma)")
            else:
                self.log.error(number, None, _bad_bytes(segment) or _json_error(exc))
            return None


class CsvReader(Reader):
    """A header row, then one record per row. Cells of JSON columns are parsed; empty cells count as missing."""

    def __iter__(self):
        csv.field_size_limit(max(csv.field_size_limit(), 64 * 1024 * 1024))
        bad_lines: dict[int, str] = {}
        blank = 0
        with open(self.path, "rb") as f:
            reader = csv.reader(self._lines(f, bad_lines))
            header = None
            while True:
                number = reader.line_num + 1
                try:
                    cells = next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:
                    self.log.error(number, None, f"invalid CSV: {exc}")
                    yield number, None
                    return
                problems = [bad_lines.pop(n) for n in range(number, reader.line_num + 1) if n in bad_lines]
                if not problems and (not cells or (len(cells) == 1 and not cells[0].strip())):
                    blank += 1
                    continue
                if header is None:
                    header = self._header(cells, problems)
                    if header is None:
                        return
                    continue
                if problems:
                    self.log.error(number, None, problems[0])
                    yield number, None
                elif len(cells) != len(header):
                    self.log.error(number, None, f"has {len(cells)} cells; the header row has {len(header)} columns")
                    yield number, None
                else:
                    yield number, self._row(number, header, cells)
        if blank:
            self.log.warn(None, None, f"skipped {blank} empty line{'s' if blank != 1 else ''}")

    def _lines(self, f, bad_lines: dict[int, str]):
        for number, raw in enumerate(f, 1):
            self.bytes_read += len(raw)
            if number == 1 and raw.startswith(UTF8_BOM):
                raw = raw[3:]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                bad_lines[number] = _bad_bytes(raw)
                text = raw.decode("utf-8", errors="replace")
            if "\x00" in text:
                bad_lines[number] = _bad_bytes(raw)
                text = text.replace("\x00", "")
            yield text

    def _header(self, cells: list[str], problems: list[str]) -> list[str] | None:
        header = [c.strip() for c in cells]
        if problems:
            self.log.error(1, None, problems[0])
        elif not all(header):
            self.log.error(1, None, "the header row has an empty column name")
        elif len(set(header)) != len(header):
            dupes = sorted({c for c in header if header.count(c) > 1})
            self.log.error(1, None, f"the header row repeats column(s) {', '.join(dupes)}")
        else:
            return header
        return None

    def _row(self, number: int, header: list[str], cells: list[str]) -> dict | None:
        row = {}
        for name, cell in zip(header, cells, strict=False):
            if cell == "":
                if name in CSV_TEXT_COLUMNS:
                    row[name] = cell
                continue
            if name in CSV_JSON_COLUMNS or (name in CSV_MAYBE_MESSAGES and cell.lstrip().startswith("[{")):
                try:
                    row[name] = orjson.loads(cell)
                except orjson.JSONDecodeError as exc:
                    if name in CSV_MAYBE_MESSAGES:
                        row[name] = cell  # plain text that happens to start with "[{"
                        continue
                    self.log.error(number, name, f"the cell must hold JSON; {_json_error(exc)}")
                    return None
            else:
                row[name] = cell
        return row


class ParquetReader(Reader):
    unit = "row"
    batch_rows = 2_000

    def __iter__(self):
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(self.path)
        except (pa.ArrowException, OSError) as exc:
            self.log.error(None, None, f"not a valid Parquet file ({exc})")
            return
        total_rows = parquet.metadata.num_rows or 1
        number = 0
        try:
            for batch in parquet.iter_batches(batch_size=self.batch_rows):
                for row in batch.to_pylist():
                    number += 1
                    yield number, {k: v for k, v in row.items() if v is not None}
                self.bytes_read = self.total_bytes * number // total_rows
        except (pa.ArrowException, OSError) as exc:
            self.log.error(number + 1, None, f"cannot read the Parquet data ({exc})")
        finally:
            parquet.close()


READERS = {"jsonl": JsonlReader, "json": JsonArrayReader, "csv": CsvReader, "parquet": ParquetReader}


def open_reader(path: str, file_format: str, log: ErrorLog, total_bytes: int) -> Reader:
    return READERS[file_format](path, log, total_bytes)
