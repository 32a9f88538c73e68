"""Curated rows to files TRL reads: records, the train/test split by prompt, and the writers.

Formats (https://huggingface.co/docs/trl/dataset_formats):
- ``dpo`` (DPOTrainer, ORPO, SimPO/CPO): ``{"prompt", "chosen", "rejected"}``; optional ``margin`` and ``pair_id``.
  Standard: strings (a multi-turn prompt is written as "ROLE: content" blocks, as the judges see it).
  Conversational: ``prompt`` is the message list, ``chosen`` / ``rejected`` are one assistant message each.
- ``kto`` (KTOTrainer): unpaired ``{"prompt", "completion", "label"}``: a pair gives its chosen response with
  ``label: true`` and its rejected one with ``label: false``; a "both bad" pair gives both with ``label: false``.
Files: JSONL, Parquet, CSV (standard format only; cells starting with = + - @ tab or CR are prefixed with ' so
spreadsheets never run them) and an HF ``datasets`` folder (``save_to_disk``, splits train/test). The same rows give
byte-identical JSONL, Parquet and CSV files, and the folder's fingerprint is the content hash.
"""

from __future__ import annotations

import csv
import hashlib
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

import orjson

from judging.prompts import render_conversation

from .curation import Row

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


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


def split_by_prompt(rows: list[Row], *, test_fraction: float, seed: int) -> tuple[list[Row], list[Row]]:
    """Whole prompt groups go to one side: groups are ordered by sha256(seed, group) and the first ones fill the
    test split up to ``test_fraction`` of the rows. No prompt (or near-same prompt) appears in both."""
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError("test_fraction must be in [0, 1)")
    groups: dict[str, list[Row]] = {}
    for row in rows:
        groups.setdefault(row.group or str(row.pair_id), []).append(row)
    order = sorted(groups, key=lambda g: hashlib.sha256(f"{seed}:{g}".encode()).hexdigest())
    target = round(test_fraction * len(rows))
    test_groups: set[str] = set()
    taken = 0
    for g in order:
        if taken >= target:
            break
        test_groups.add(g)
        taken += len(groups[g])
    train = [r for r in rows if (r.group or str(r.pair_id)) not in test_groups]
    test = [r for r in rows if (r.group or str(r.pair_id)) in test_groups]
    return train, test


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_jsonl(path: Path, items: Iterable[dict]) -> int:
    n = 0
    with open(path, "wb") as f:
        for item in items:
            f.write(orjson.dumps(item) + b"\n")
            n += 1
    return n


def write_parquet(path: Path, items: Iterable[dict], *, batch: int = 50_000) -> int:
    """Streamed in row groups, so memory stays flat however many rows there are."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer, n, chunk = None, 0, []

    def flush():
        nonlocal writer
        table = pa.Table.from_pylist(chunk)
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema, compression="zstd")
        writer.write_table(table.cast(writer.schema))

    try:
        for item in items:
            chunk.append(item)
            n += 1
            if len(chunk) >= batch:
                flush()
                chunk = []
        if chunk or writer is None:
            flush()
    finally:
        if writer is not None:
            writer.close()
    return n


def _safe_cell(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def write_csv(path: Path, items: Iterable[dict]) -> int:
    n = 0
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = None
        for item in items:
            if writer is None:
                writer = csv.DictWriter(f, fieldnames=list(item), lineterminator="\n")
                writer.writeheader()
            writer.writerow({k: _safe_cell(v) for k, v in item.items()})
            n += 1
    return n


def write_hf_folder(path: Path, split_files: dict[str, Path], fingerprint: str) -> None:
    """An HF ``datasets`` folder (``load_from_disk``) built from the split Parquet files."""
    from datasets import Dataset, DatasetDict

    cache = path.parent / ".hf-cache"  # memory-mapped Arrow files, not the whole table in memory
    splits = {}
    for name, parquet in split_files.items():
        ds = Dataset.from_parquet(str(parquet), cache_dir=str(cache))
        splits[name] = Dataset(ds.data, info=ds.info, split=name, fingerprint=f"{fingerprint[:16]}-{name}")
    DatasetDict(splits).save_to_disk(str(path))
    shutil.rmtree(cache, ignore_errors=True)


def file_entry(path: Path, root: Path) -> dict:
    return {"path": str(path.relative_to(root)), "bytes": path.stat().st_size, "sha256": _sha256(path)}
