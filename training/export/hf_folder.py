"""The HF ``datasets`` folder of an export, written with pyarrow alone (``datasets`` is not imported: importing it
costs ~80 MB of memory in the process that builds the export, docs/PERFORMANCE.md "Export").

The folder is what ``DatasetDict.save_to_disk`` writes, and ``load_from_disk`` reads it: ``dataset_dict.json``, and
per split one Arrow stream file (the shard), ``state.json`` and ``dataset_info.json``. The shard's bytes are those
``datasets.arrow_writer.ArrowWriter`` writes (the schema with the features as ``huggingface`` metadata, record
batches of at most 1,000 rows); the tests compare both files and features with ``datasets``' own.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

SHARD = "data-00000-of-00001.arrow"  # the name save_to_disk gives a split's only shard
RECORD_BATCH = 1_000  # rows per record batch: datasets.config.DEFAULT_MAX_BATCH_SIZE

_VALUE_TYPES = {pa.string(): "string", pa.float64(): "float64", pa.int64(): "int64", pa.bool_(): "bool"}


def _feature(arrow_type: pa.DataType) -> dict:
    if arrow_type in _VALUE_TYPES:
        return {"dtype": _VALUE_TYPES[arrow_type], "id": None, "_type": "Value"}
    if pa.types.is_list(arrow_type) and pa.types.is_struct(arrow_type.value_type):
        struct = arrow_type.value_type
        return {"feature": {struct.field(i).name: _feature(struct.field(i).type) for i in range(struct.num_fields)},
                "length": -1, "id": None, "_type": "List"}  # fmt: skip
    raise TypeError(f"no datasets feature for {arrow_type}")


def features(schema: pa.Schema) -> dict:
    """``datasets.Features.from_arrow_schema(schema)`` as dataset_info.json holds it, for the export schemas."""
    return {field.name: _feature(field.type) for field in schema}


def _without_defaults(feature: dict) -> dict:
    """A feature as the Arrow file's metadata holds it: ``id`` None and ``length`` -1 left out (datasets' asdict)."""
    return {key: _without_defaults(value) if isinstance(value, dict) else value for key, value in feature.items()
            if (key, value) not in (("id", None), ("length", -1))}  # fmt: skip


def dataset_info(schema: pa.Schema) -> dict:
    """What ``save_to_disk`` writes as a split's dataset_info.json, keys sorted."""
    info = {"builder_name": None, "citation": "", "config_name": None, "dataset_name": None, "dataset_size": None,
            "description": "", "download_checksums": None, "download_size": None, "features": features(schema),
            "homepage": "", "license": "", "post_processed": None, "post_processing_size": None,
            "size_in_bytes": None, "splits": None, "supervised_keys": None, "version": None}  # fmt: skip
    return {key: info[key] for key in sorted(info)}


class ShardWriter:
    """One split's Arrow file, written table by table."""

    def __init__(self, path: Path, schema: pa.Schema):
        metadata = {"huggingface": json.dumps({"info": {"features": _without_defaults(features(schema))}})}
        self.file = pa.OSFile(str(path), "wb")
        self.writer = pa.RecordBatchStreamWriter(self.file, schema.with_metadata(metadata))

    def write(self, table: pa.Table) -> None:
        self.writer.write_table(table, max_chunksize=RECORD_BATCH)

    def close(self) -> None:
        try:
            self.writer.close()
        finally:
            self.file.close()


def finish(path: Path, splits: list[str], schema: pa.Schema, fingerprint: str) -> None:
    """The JSON files ``DatasetDict.save_to_disk`` writes next to the shards, so ``load_from_disk`` reads the
    folder. Nothing is read back or memory-mapped."""
    info = json.dumps(dataset_info(schema), indent=2)
    for split in splits:
        state = {"_data_files": [{"filename": SHARD}], "_fingerprint": f"{fingerprint[:16]}-{split}",
                 "_format_columns": None, "_format_kwargs": {}, "_format_type": None, "_output_all_columns": False,
                 "_split": split}  # fmt: skip
        (path / split / "state.json").write_text(json.dumps(state, indent=2, sort_keys=True))
        (path / split / "dataset_info.json").write_text(info)
    (path / "dataset_dict.json").write_text(json.dumps({"splits": splits}))


def split_pair_ids(path: Path, split: str) -> list[int]:
    """The pair ids of one split of an export's folder, in row order (the shard is memory-mapped: the texts beside
    them are not read into memory)."""
    shard = path / split / SHARD
    if not shard.is_file():
        return []
    with pa.memory_map(str(shard)) as source:
        reader = pa.ipc.open_stream(source)
        return [int(i) for batch in reader for i in batch.column("pair_id").to_pylist() if i is not None]
