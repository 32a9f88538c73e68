"""The records of an export, in the formats TRL reads (https://huggingface.co/docs/trl/dataset_formats):

- ``dpo`` (DPOTrainer, ORPO, SimPO/CPO): ``{"prompt", "chosen", "rejected"}``; optional ``margin`` and ``pair_id``.
  Standard: strings (a multi-turn prompt is written as "ROLE: content" blocks, as the judges see it).
  Conversational: ``prompt`` is the message list, ``chosen`` / ``rejected`` are one assistant message each.
- ``kto`` (KTOTrainer): unpaired ``{"prompt", "completion", "label"}``: a pair gives its chosen response with
  ``label: true`` and its rejected one with ``label: false``; a "both bad" pair gives both with ``label: false``.

Each record's JSON line, and the fixed Arrow schema its Parquet, CSV and HF files share.
"""

from __future__ import annotations

import orjson
import pyarrow as pa

from judging.prompts import render_conversation


def _messages(messages: list[dict]) -> list[dict]:
    """A prompt as the conversational format writes it: role and content of each message, nothing else."""
    return [{"role": m.get("role", "user"), "content": m.get("content", "")} for m in messages]


def _assistant(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def record_columns(ids: list[int], prompts: list, a: list[str], b: list[str], swap: list[bool], margin: list[float],
                   both_bad: list[bool], fmt: str, *, conversational: bool) -> dict[str, list]:  # fmt: skip
    """The records of some curated pairs, as columns in schema order (inputs: pair id, prompt, the two responses,
    whether the chosen one is B, the margin in [0, 1], and for KTO whether both responses are undesirable). A prompt
    is its message list, or, for the standard format, its rendered text (training.curation.texts.pair_text_reader's
    ``prompt_text``)."""
    chosen = [y if s else x for x, y, s in zip(a, b, swap, strict=True)]
    rejected = [x if s else y for x, y, s in zip(a, b, swap, strict=True)]
    if conversational:
        prompt = [_messages(p) for p in prompts]
        chosen, rejected = [_assistant(t) for t in chosen], [_assistant(t) for t in rejected]
    else:
        prompt = [p if isinstance(p, str) else render_conversation(p) for p in prompts]
    if fmt == "dpo":
        rounded = {m: round(m, 6) for m in set(margin)}  # margins take few distinct values
        return {"prompt": prompt, "chosen": chosen, "rejected": rejected, "margin": [rounded[m] for m in margin],
                "pair_id": ids}  # fmt: skip
    if fmt == "kto":  # two records a pair: the chosen response, then the rejected one
        return {"prompt": [p for p in prompt for _ in range(2)],
                "completion": [t for pair in zip(chosen, rejected, strict=True) for t in pair],
                "label": [x for bad in both_bad for x in (not bad, False)],
                "pair_id": [i for i in ids for _ in range(2)]}  # fmt: skip
    raise ValueError(f"unknown export format {fmt!r}")


def records(*args, **kwargs) -> list[dict]:
    """The records of ``record_columns(*args, **kwargs)``, one dict each, in order."""
    return record_dicts(record_columns(*args, **kwargs))


def record_dicts(columns: dict[str, list]) -> list[dict]:
    """One dict per record of some columns (record_columns: equal lengths), a dict display per format: half the
    time of dict(zip(...)), and zip's strict check would cost a third more."""
    if "chosen" in columns:
        rows = zip(columns["prompt"], columns["chosen"], columns["rejected"], columns["margin"], columns["pair_id"],
                   strict=False)  # fmt: skip
        return [{"prompt": p, "chosen": c, "rejected": r, "margin": m, "pair_id": i} for p, c, r, m, i in rows]
    rows = zip(columns["prompt"], columns["completion"], columns["label"], columns["pair_id"], strict=False)
    return [{"prompt": p, "completion": c, "label": x, "pair_id": i} for p, c, x, i in rows]


def jsonl(items: list[dict]) -> bytes:
    """The records as JSON lines: the bytes of ``orjson.dumps(item)`` and a newline for each, made by one
    ``orjson.dumps`` of the whole list (a call per record costs ~3 µs more than the record itself). In the list's
    JSON, records are separated by ``},{"prompt":`` (every record's first key is "prompt"); that text never occurs
    inside a JSON string, where every '"' is escaped, nor between a record's own values, so replacing it cuts
    exactly between records."""
    if not items:
        return b""
    return orjson.dumps(items)[1:-1].replace(b'},{"prompt":', b'}\n{"prompt":') + b"\n"


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
