"""Curated rows to files: JSONL, Parquet, CSV (standard format only, written by Arrow: strings quoted, booleans
true/false; cells starting with = + - @ tab or CR are prefixed with ' so spreadsheets never run them) and an HF
``datasets`` folder (``save_to_disk``, splits train/test, written by training/export/hf_folder.py; also as one zip).
The same rows give byte-identical JSONL, Parquet and CSV files, and the folder's fingerprint is the content hash.

Streaming: ``write_splits`` reads the kept pairs' texts in batches, in pair id order (outside a transaction a
background thread reads the next batches on its own connection: training.curation.texts), and writes both splits in
one pass (JSONL, Parquet, CSV and the HF folder's Arrow files), so memory holds a few batches of texts (and one
Parquet row group per split) however many rows there are. The HF folder is not built by reading the Parquet back:
memory-mapped Arrow pages count as resident memory once touched, and save_to_disk touches them all.
"""

from __future__ import annotations

import hashlib
import shutil
import time
import zipfile
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import compress
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..curation.steps import Curated
from . import hf_folder
from .records import jsonl, record_columns, record_dicts, schema

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
PARQUET_ROW_GROUP = 10_000  # records: ~6 MB of text, waiting in memory per split until written


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_FORMULA_START = "^[" + "".join("\\" + c if c in "-\\^]" else c for c in FORMULA_PREFIXES) + "]"


def _formula_safe(table: pa.Table) -> pa.Table:
    """The table with a ' before every string cell that starts with one of FORMULA_PREFIXES (for the CSV)."""
    columns = []
    for column in table.columns:
        if pa.types.is_string(column.type):
            starts = pc.fill_null(pc.match_substring_regex(column, _FORMULA_START), False)
            column = pc.if_else(starts, pc.binary_join_element_wise("'", column, ""), column)
        columns.append(column)
    return pa.table(columns, schema=table.schema)


class _SplitWriter:
    """The JSONL, Parquet and (standard format) CSV files of one split, written as records arrive. The JSONL bytes
    are hashed on the way (``jsonl_sha256``); Parquet row groups hold PARQUET_ROW_GROUP records each."""

    def __init__(self, folder: Path, split: str, schema: pa.Schema, *, csv_file: bool, timings: dict):
        self.paths = {"jsonl": folder / f"{split}.jsonl", "parquet": folder / f"{split}.parquet"}
        (folder / "hf" / split).mkdir(parents=True)
        self.hf = hf_folder.ShardWriter(folder / "hf" / split / hf_folder.SHARD, schema)
        self.schema, self.timings = schema, timings
        self.jsonl = open(self.paths["jsonl"], "wb")
        self.jsonl_sha256 = hashlib.sha256()
        # the file write and the hashing release the GIL: a thread does them while the next batch is serialised
        self.jsonl_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"jsonl-{split}")
        self.jsonl_written: Future | None = None
        self.parquet = pq.ParquetWriter(self.paths["parquet"], schema, compression="zstd")
        self.pending: list[pa.Table] = []
        self.waiting = 0
        self.csv = self.csv_writer = None
        if csv_file:
            self.paths["csv"] = folder / f"{split}.csv"
            self.csv = pa.OSFile(str(self.paths["csv"]), "wb")

    def write(self, columns: dict[str, list]) -> None:
        """Write some records, given as columns (record_columns)."""
        if not columns["pair_id"]:
            return
        start = time.perf_counter()
        data = jsonl(record_dicts(columns))
        if self.jsonl_written is not None:
            self.jsonl_written.result()  # the previous batch's bytes are written and hashed (and errors raised)
        self.jsonl_written = self.jsonl_thread.submit(self._jsonl_write, data)
        # kept as Arrow columns (compact), written as a row group whenever PARQUET_ROW_GROUP are waiting
        table = pa.table([pa.array(columns[f.name], type=f.type) for f in self.schema], schema=self.schema)
        self.pending.append(table)
        self.waiting += len(table)
        self.hf.write(table)
        while self.waiting >= PARQUET_ROW_GROUP:
            self._flush(PARQUET_ROW_GROUP)
        middle = time.perf_counter()
        self.timings["write_jsonl_parquet_s"] = self.timings.get("write_jsonl_parquet_s", 0.0) + middle - start
        if self.csv is not None:
            if self.csv_writer is None:  # opened at the first rows: a split without rows gives an empty file
                options = pacsv.WriteOptions(include_header=True, quoting_style="needed")
                self.csv_writer = pacsv.CSVWriter(self.csv, table.schema, write_options=options)
            self.csv_writer.write_table(_formula_safe(table))
            self.timings["write_csv_s"] = self.timings.get("write_csv_s", 0.0) + time.perf_counter() - middle

    def _jsonl_write(self, data: bytes) -> None:
        self.jsonl.write(data)
        self.jsonl_sha256.update(data)

    def _flush(self, n: int) -> None:
        """Write the first ``n`` waiting records as one row group."""
        waiting = pa.concat_tables(self.pending)
        self.parquet.write_table(waiting.slice(0, n).combine_chunks())
        rest = waiting.slice(n)
        self.pending = [rest] if len(rest) else []
        self.waiting = len(rest)

    def close(self) -> None:
        if self.waiting:
            self._flush(self.waiting)
        try:
            if self.jsonl_written is not None:
                self.jsonl_written.result()
        finally:
            self.jsonl_thread.shutdown()
        self.parquet.close()
        self.hf.close()
        self.jsonl.close()
        if self.csv_writer is not None:
            self.csv_writer.close()
        if self.csv is not None:
            self.csv.close()


def write_splits(folder: Path, rows: Curated, is_test: np.ndarray, fmt: str, *, conversational: bool,
                 timings: dict | None = None) -> dict:  # fmt: skip
    """Write train (and, when it has rows, test) files in one pass over the rows' texts. Returns the paths by file
    name, the JSONL files' sha256 and the content hash (sha256 of train.jsonl then test.jsonl). ``timings``, when
    given, receives the seconds spent writing JSONL + Parquet and CSV."""
    timings = {} if timings is None else timings
    table_schema = schema(fmt, conversational=conversational)
    writers = {split: _SplitWriter(folder, split, table_schema, csv_file=not conversational, timings=timings)
               for split in (("train", "test") if is_test.any() else ("train",))}  # fmt: skip
    per_row = 2 if fmt == "kto" else 1
    prompt = "prompt" if conversational else "prompt_text"
    done = 0
    try:
        for ids, batch in rows.texts(rows.pair_id, (prompt, "response_a", "response_b")):
            part = slice(done, done + len(ids))
            done += len(ids)
            columns = record_columns(ids.tolist(), batch[prompt], batch["response_a"], batch["response_b"],
                                     rows.swap[part].tolist(), rows.margin[part].tolist(), rows.both_bad[part].tolist(),
                                     fmt, conversational=conversational)  # fmt: skip
            test = is_test[part]
            if not test.any():
                writers["train"].write(columns)
                continue
            test = np.repeat(test, per_row).tolist()
            train = [not t for t in test]
            writers["train"].write({name: list(compress(values, train)) for name, values in columns.items()})
            writers["test"].write({name: list(compress(values, test)) for name, values in columns.items()})
    finally:
        for writer in writers.values():
            writer.close()
    # the content hash covers train.jsonl then test.jsonl: train's bytes were hashed on the way, test's are read back
    content = writers["train"].jsonl_sha256.copy()
    if "test" in writers:
        with open(writers["test"].paths["jsonl"], "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                content.update(block)
    return {
        "paths": {path.name: path for writer in writers.values() for path in writer.paths.values()},
        "jsonl_sha256": {writer.paths["jsonl"].name: writer.jsonl_sha256.hexdigest() for writer in writers.values()},
        "content_hash": content.hexdigest(),
    }


def zip_folder(folder: Path, path: Path) -> None:
    """The folder as one zip (stored, not compressed: Arrow files gain little), entries under the folder's name in
    sorted order with a fixed date, so the same folder gives the same bytes."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for file in sorted(p for p in folder.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(str(Path(folder.name) / file.relative_to(folder)), date_time=(1980, 1, 1, 0, 0, 0))
            with open(file, "rb") as source, archive.open(info, "w", force_zip64=True) as target:
                shutil.copyfileobj(source, target, 1 << 20)


def file_entry(path: Path, root: Path, *, sha256: str | None = None) -> dict:
    return {"path": str(path.relative_to(root)), "bytes": path.stat().st_size, "sha256": sha256 or _sha256(path)}
