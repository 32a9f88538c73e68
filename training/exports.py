"""Curated rows to files TRL reads: records, the train/test split by prompt, and the writers.

Formats (https://huggingface.co/docs/trl/dataset_formats):
- ``dpo`` (DPOTrainer, ORPO, SimPO/CPO): ``{"prompt", "chosen", "rejected"}``; optional ``margin`` and ``pair_id``.
  Standard: strings (a multi-turn prompt is written as "ROLE: content" blocks, as the judges see it).
  Conversational: ``prompt`` is the message list, ``chosen`` / ``rejected`` are one assistant message each.
- ``kto`` (KTOTrainer): unpaired ``{"prompt", "completion", "label"}``: a pair gives its chosen response with
  ``label: true`` and its rejected one with ``label: false``; a "both bad" pair gives both with ``label: false``.
Files: JSONL, Parquet, CSV (standard format only, written by Arrow: strings quoted, booleans true/false; cells
starting with = + - @ tab or CR are prefixed with ' so spreadsheets never run them) and an HF ``datasets`` folder
(``save_to_disk``, splits train/test; also as one zip). The same rows give byte-identical JSONL, Parquet and CSV
files, and the folder's fingerprint is the content hash.

Streaming: ``write_splits`` reads the kept pairs' texts in batches, in pair id order (outside a transaction a
background thread reads the next batches on its own connection: selectors.pair_text_reader), and writes both
splits in one pass (JSONL, Parquet, CSV and the HF folder's Arrow files), so memory holds a few batches of texts
(and one Parquet row group per split) however many rows there are. The HF folder is not built by reading the
Parquet back: memory-mapped Arrow pages count as resident memory once touched, and save_to_disk touches them all.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import zipfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from judging.prompts import render_conversation

from .curation import Curated

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
PARQUET_ROW_GROUP = 50_000  # records
HF_SHARD = "data-00000-of-00001.arrow"  # the name save_to_disk gives a split's only shard


def _prompt(messages: list[dict], conversational: bool):
    if conversational:
        return [{"role": m.get("role", "user"), "content": m.get("content", "")} for m in messages]
    return render_conversation(messages)


def _completion(text: str, conversational: bool):
    return [{"role": "assistant", "content": text}] if conversational else text


def records(ids: list[int], prompts: list[list[dict]], a: list[str], b: list[str], swap: list[bool],
            margin: list[float], both_bad: list[bool], fmt: str, *, conversational: bool) -> list[dict]:  # fmt: skip
    """The records of some curated pairs (columns: pair id, prompt messages, the two responses, whether the chosen
    one is B, the margin in [0, 1], and for KTO whether both responses are undesirable), in their order."""
    chosen = [y if s else x for x, y, s in zip(a, b, swap, strict=True)]
    rejected = [x if s else y for x, y, s in zip(a, b, swap, strict=True)]
    if conversational:
        prompt = [_prompt(p, True) for p in prompts]
        chosen, rejected = [_completion(t, True) for t in chosen], [_completion(t, True) for t in rejected]
    else:
        prompt = [render_conversation(p) for p in prompts]
    if fmt == "dpo":
        rounded = {m: round(m, 6) for m in set(margin)}  # margins take few distinct values
        return [{"prompt": p, "chosen": c, "rejected": r, "margin": rounded[m], "pair_id": i}
                for p, c, r, m, i in zip(prompt, chosen, rejected, margin, ids, strict=True)]  # fmt: skip
    if fmt == "kto":
        out = []
        for p, c, r, bad, i in zip(prompt, chosen, rejected, both_bad, ids, strict=True):
            out.append({"prompt": p, "completion": c, "label": not bad, "pair_id": i})
            out.append({"prompt": p, "completion": r, "label": False, "pair_id": i})
        return out
    raise ValueError(f"unknown export format {fmt!r}")


_MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))


def schema(fmt: str, *, conversational: bool) -> pa.Schema:
    """The Parquet (and Arrow) schema of ``records``: fixed, whatever the rows."""
    text = _MESSAGES if conversational else pa.string()
    if fmt == "dpo":
        return pa.schema([("prompt", text), ("chosen", text), ("rejected", text), ("margin", pa.float64()),
                          ("pair_id", pa.int64())])  # fmt: skip
    if fmt == "kto":
        return pa.schema([("prompt", text), ("completion", text), ("label", pa.bool_()), ("pair_id", pa.int64())])
    raise ValueError(f"unknown export format {fmt!r}")


def split_by_prompt(rows: Curated, *, test_fraction: float, seed: int) -> np.ndarray:
    """Which rows go to the test split (a mask). Whole prompt groups go to one side: groups are ordered by
    sha256(seed, group) and the first ones fill the test split up to ``test_fraction`` of the rows. No prompt (or
    near-same prompt) appears in both."""
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError("test_fraction must be in [0, 1)")
    groups, inverse, sizes = np.unique(rows.group, return_inverse=True, return_counts=True)
    digests = np.array([hashlib.sha256(f"{seed}:{g:016x}".encode()).digest() for g in groups.tolist()], dtype="S32")
    order = np.argsort(digests, kind="stable")
    target = round(test_fraction * len(rows))
    taken_before = np.cumsum(sizes[order]) - sizes[order]
    test_groups = np.zeros(len(groups), dtype=bool)
    test_groups[order[taken_before < target]] = True
    return test_groups[inverse]


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
        from datasets import Features
        from datasets.arrow_writer import ArrowWriter

        self.paths = {"jsonl": folder / f"{split}.jsonl", "parquet": folder / f"{split}.parquet"}
        (folder / "hf" / split).mkdir(parents=True)
        self.hf = ArrowWriter(features=Features.from_arrow_schema(schema), path=str(folder / "hf" / split / HF_SHARD))
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

    def write(self, items: list[dict]) -> None:
        if not items:
            return
        start = time.perf_counter()
        data = b"".join([orjson.dumps(item, option=orjson.OPT_APPEND_NEWLINE) for item in items])
        if self.jsonl_written is not None:
            self.jsonl_written.result()  # the previous batch's bytes are written and hashed (and errors raised)
        self.jsonl_written = self.jsonl_thread.submit(self._jsonl_write, data)
        # kept as Arrow columns (compact), written as a row group whenever PARQUET_ROW_GROUP are waiting
        table = pa.table([pa.array([item[f.name] for item in items], type=f.type) for f in self.schema],
                         schema=self.schema)  # fmt: skip
        self.pending.append(table)
        self.waiting += len(items)
        self.hf.write_table(table)
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
        self.hf.finalize()
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
    done = 0
    try:
        for ids, batch in rows.texts(rows.pair_id, ("prompt", "response_a", "response_b")):
            part = slice(done, done + len(ids))
            done += len(ids)
            items = records(ids.tolist(), batch["prompt"], batch["response_a"], batch["response_b"],
                            rows.swap[part].tolist(), rows.margin[part].tolist(), rows.both_bad[part].tolist(), fmt,
                            conversational=conversational)  # fmt: skip
            test = is_test[part]
            if not test.any():
                writers["train"].write(items)
                continue
            test = np.repeat(test, per_row).tolist()
            writers["train"].write([item for item, t in zip(items, test, strict=True) if not t])
            writers["test"].write([item for item, t in zip(items, test, strict=True) if t])
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


def finish_hf_folder(path: Path, splits: list[str], schema: pa.Schema, fingerprint: str) -> None:
    """Complete the HF ``datasets`` folder whose Arrow files ``write_splits`` wrote (one shard per split, with the
    ``datasets`` ArrowWriter): the JSON files ``DatasetDict.save_to_disk`` writes next to them, so
    ``load_from_disk`` reads it. Nothing is read back or memory-mapped."""
    from dataclasses import asdict

    from datasets import DatasetInfo, Features

    info = asdict(DatasetInfo(features=Features.from_arrow_schema(schema)))
    for split in splits:
        state = {"_data_files": [{"filename": HF_SHARD}], "_fingerprint": f"{fingerprint[:16]}-{split}",
                 "_format_columns": None, "_format_kwargs": {}, "_format_type": None, "_output_all_columns": False,
                 "_split": split}  # fmt: skip
        (path / split / "state.json").write_text(json.dumps(state, indent=2, sort_keys=True))
        (path / split / "dataset_info.json").write_text(json.dumps({k: info[k] for k in sorted(info)}, indent=2))
    (path / "dataset_dict.json").write_text(json.dumps({"splits": splits}))


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
