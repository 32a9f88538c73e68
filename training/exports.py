"""Curated rows to files TRL reads: records, the train/test split by prompt, and the writers.

Formats (https://huggingface.co/docs/trl/dataset_formats):
- ``dpo`` (DPOTrainer, ORPO, SimPO/CPO): ``{"prompt", "chosen", "rejected"}``; optional ``margin`` and ``pair_id``.
  Standard: strings (a multi-turn prompt is written as "ROLE: content" blocks, as the judges see it).
  Conversational: ``prompt`` is the message list, ``chosen`` / ``rejected`` are one assistant message each.
- ``kto`` (KTOTrainer): unpaired ``{"prompt", "completion", "label"}``: a pair gives its chosen response with
  ``label: true`` and its rejected one with ``label: false``; a "both bad" pair gives both with ``label: false``.
Files: JSONL, Parquet, CSV (standard format only; cells starting with = + - @ tab or CR are prefixed with ' so
spreadsheets never run them) and an HF ``datasets`` folder (``save_to_disk``, splits train/test; also as one zip).
The same rows give byte-identical JSONL, Parquet and CSV files, and the folder's fingerprint is the content hash.

Streaming: ``write_splits`` reads the kept pairs' texts in batches, in pair id order, and writes both splits in one
pass (JSONL, Parquet, CSV and the HF folder's Arrow files), so memory holds one batch of texts (and one Parquet row
group per split) however many rows there are. The HF folder is not built by reading the Parquet back: memory-mapped
Arrow pages count as resident memory once touched, and save_to_disk touches them all.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import time
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from judging.prompts import render_conversation

from .curation import Curated

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
PARQUET_ROW_GROUP = 50_000  # records
HF_SHARD = "data-00000-of-00001.arrow"  # the name save_to_disk gives a split's only shard


@dataclass
class Row:
    """One curated pair with its texts, as the writers see it."""

    pair_id: int
    prompt: list[dict]
    chosen: str
    rejected: str
    margin: float  # strength of the preference in [0, 1]
    both_bad: bool = False  # KTO: both responses undesirable


def _prompt(row: Row, conversational: bool):
    if conversational:
        return [{"role": m.get("role", "user"), "content": m.get("content", "")} for m in row.prompt]
    return render_conversation(row.prompt)


def _completion(text: str, conversational: bool):
    return [{"role": "assistant", "content": text}] if conversational else text


def records(rows: Iterable[Row], fmt: str, *, conversational: bool, extra_columns: bool = True) -> Iterator[dict]:
    for row in rows:
        prompt = _prompt(row, conversational)
        if fmt == "dpo":
            record = {"prompt": prompt, "chosen": _completion(row.chosen, conversational),
                      "rejected": _completion(row.rejected, conversational)}  # fmt: skip
            if extra_columns:
                record |= {"margin": round(row.margin, 6), "pair_id": row.pair_id}
            yield record
        elif fmt == "kto":
            for text, label in ((row.chosen, not row.both_bad), (row.rejected, False)):
                record = {"prompt": prompt, "completion": _completion(text, conversational), "label": label}
                if extra_columns:
                    record["pair_id"] = row.pair_id
                yield record
        else:
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


def _safe_cell(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


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
        self.parquet = pq.ParquetWriter(self.paths["parquet"], schema, compression="zstd")
        self.pending: list[pa.Table] = []
        self.waiting = 0
        self.csv = self.csv_writer = None
        if csv_file:
            self.paths["csv"] = folder / f"{split}.csv"
            self.csv = open(self.paths["csv"], "w", newline="", encoding="utf-8")

    def write(self, items: list[dict]) -> None:
        start = time.perf_counter()
        data = b"".join([orjson.dumps(item) + b"\n" for item in items])
        self.jsonl.write(data)
        self.jsonl_sha256.update(data)
        if items:  # kept as Arrow columns (compact), written as a row group whenever PARQUET_ROW_GROUP are waiting
            table = pa.table([pa.array([item[f.name] for item in items], type=f.type) for f in self.schema],
                             schema=self.schema)  # fmt: skip
            self.pending.append(table)
            self.waiting += len(items)
            self.hf.write_table(table)
        while self.waiting >= PARQUET_ROW_GROUP:
            self._flush(PARQUET_ROW_GROUP)
        middle = time.perf_counter()
        self.timings["write_jsonl_parquet_s"] = self.timings.get("write_jsonl_parquet_s", 0.0) + middle - start
        if self.csv is not None and items:
            if self.csv_writer is None:
                self.csv_writer = csv.writer(self.csv, lineterminator="\n")
                self.csv_writer.writerow(list(items[0]))
            self.csv_writer.writerows([[_safe_cell(v) for v in item.values()] for item in items])
            self.timings["write_csv_s"] = self.timings.get("write_csv_s", 0.0) + time.perf_counter() - middle

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
        self.parquet.close()
        self.hf.finalize()
        self.jsonl.close()
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
    done = 0
    try:
        for ids, batch in rows.texts(rows.pair_id, ("prompt", "response_a", "response_b")):
            part = slice(done, done + len(ids))
            done += len(ids)
            out: dict[str, list[dict]] = {split: [] for split in writers}
            for pair_id, prompt, a, b, swap, margin, both_bad, test in zip(
                ids.tolist(), batch["prompt"], batch["response_a"], batch["response_b"], rows.swap[part].tolist(),
                rows.margin[part].tolist(), rows.both_bad[part].tolist(), is_test[part].tolist(), strict=True,
            ):  # fmt: skip
                row = Row(pair_id, prompt, b if swap else a, a if swap else b, margin, both_bad)
                out["test" if test else "train"].extend(records([row], fmt, conversational=conversational))
            for split, items in out.items():
                writers[split].write(items)
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
