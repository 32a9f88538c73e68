"""Raw rows -> PairRecord: format detection and normalisation of the three record formats. Every problem is logged
with its line and field; a row with any problem yields no records."""

from __future__ import annotations

import itertools
import math
import re

from .errorlog import ErrorLog
from .fields import MISSING, FieldChecks, PairRecord, Row, content_hash, kind_of

__all__ = ["FORMATS", "ULTRAFEEDBACK_MODES", "Normalizer", "PairRecord", "content_hash", "detect_format"]

FORMATS = ("pairs", "dpo", "ultrafeedback")
ULTRAFEEDBACK_MODES = ("all", "best-vs-rest")
PAIRS_KEYS = frozenset({"prompt", "response_a", "response_b", "model_a", "model_b", "id", "metadata", "labels", "gold",
                        "gold_explanation"})  # fmt: skip
GOLD_VALUES = {"a": "A", "b": "B", "tie": "tie"}
DPO_KEYS = frozenset({"prompt", "chosen", "rejected", "chosen_model", "rejected_model", "id", "metadata"})
ULTRAFEEDBACK_KEYS = frozenset({"prompt", "instruction", "completions", "id", "metadata"})
EXPECTED_KEYS = (
    "prompt/response_a/response_b (pairs), prompt/chosen/rejected or chosen/rejected (dpo), "
    "or prompt/completions (ultrafeedback)"
)
_HH_ASSISTANT = "\n\nAssistant:"
_HH_TURN = re.compile(r"(?:^|\n\n)(Human|Assistant):")


def detect_format(data: dict) -> str | None:
    if "completions" in data:
        return "ultrafeedback"
    if "chosen" in data and "rejected" in data:
        return "dpo"
    if "response_a" in data or "response_b" in data:
        return "pairs"
    return None


def _number(value) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


def _score(completion: dict) -> float | None:
    """overall_score, else the mean of numeric ratings (a dict, a list, or UltraFeedback's annotations)."""
    overall = _number(completion.get("overall_score"))
    if overall is not None:
        return overall
    for key in ("ratings", "annotations", "fine-grained_score"):
        value = completion.get(key)
        items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else [value]
        numbers = []
        for item in items:
            if isinstance(item, dict):
                item = item.get("Rating", item.get("rating"))
            number = _number(item)
            if number is not None:
                numbers.append(number)
        if numbers:
            return sum(numbers) / len(numbers)
    return None


class Normalizer(FieldChecks):
    """Turns one raw row into PairRecords. With fmt=None the first JSON object's keys decide the format."""

    def __init__(self, *, fmt: str | None, ultrafeedback_pairs: str, log: ErrorLog, max_chars: int) -> None:
        super().__init__(log=log, max_chars=max_chars)
        self.fmt = fmt
        self.ultrafeedback_pairs = ultrafeedback_pairs
        self._handlers = {"pairs": self._pairs, "dpo": self._dpo, "ultrafeedback": self._ultrafeedback}

    def records(self, line: int, data) -> list[PairRecord]:
        row = Row(line, self.log)
        if not isinstance(data, dict):
            row.err(None, f"each record must be a JSON object, not {kind_of(data)}")
            return []
        if self.fmt is None:
            self.fmt = detect_format(data)
            if self.fmt is None:
                keys = ", ".join(sorted(data)[:12]) or "none"
                row.err(None, f"matches no known format: expected keys {EXPECTED_KEYS}; found keys: {keys}")
                return []
        row.external_id = self.name(row, data.get("id"), "id")
        records = self._handlers[self.fmt](row, data)
        return [r for r in records if r is not None] if row.ok else []

    def _pairs(self, row: Row, d: dict) -> list:
        prompt, is_chat = self.prompt(row, d.get("prompt", MISSING))
        a = self.response(row, d.get("response_a", MISSING), "response_a")
        b = self.response(row, d.get("response_b", MISSING), "response_b")
        model_a, model_b = self.name(row, d.get("model_a"), "model_a"), self.name(row, d.get("model_b"), "model_b")
        labels = self.labels(row, d.get("labels", MISSING))
        gold = self._gold(row, d.get("gold"))
        explanation = self.text(row, d.get("gold_explanation"), "gold_explanation", required=False)
        if explanation and not gold and row.ok:
            row.err("gold_explanation", 'explains a calibration answer: give "gold" too, or leave it out')
        meta = self.metadata(row, d, PAIRS_KEYS)
        return [self.make(row, prompt, is_chat, a, b, model_a, model_b, meta, labels=labels, gold=gold,
                          gold_explanation=explanation)]  # fmt: skip

    def _gold(self, row: Row, value) -> str:
        if value is None or value == "":
            return ""
        if isinstance(value, str) and value.strip().lower() in GOLD_VALUES:
            return GOLD_VALUES[value.strip().lower()]
        row.err("gold", f'must be "A", "B" or "tie", not {value!r}'[:200])
        return ""

    def _dpo(self, row: Row, d: dict) -> list:
        chosen, rejected = d.get("chosen", MISSING), d.get("rejected", MISSING)
        if d.get("prompt") is None:
            prompt, is_chat, a, b = self._dpo_implicit(row, chosen, rejected)
        else:
            prompt, is_chat = self.prompt(row, d["prompt"])
            a, b = self._dpo_response(row, chosen, "chosen"), self._dpo_response(row, rejected, "rejected")
        model_a = self.name(row, d.get("chosen_model"), "chosen_model")
        model_b = self.name(row, d.get("rejected_model"), "rejected_model")
        meta = self.metadata(row, d, DPO_KEYS)
        return [self.make(row, prompt, is_chat, a, b, model_a, model_b, meta, source_preference="A")]

    def _dpo_response(self, row: Row, value, field: str) -> str:
        if not isinstance(value, list):
            return self.response(row, value, field)
        messages = self.messages(row, value, field)
        if messages and messages[-1]["role"] != "assistant":
            row.err(f"{field}[{len(messages) - 1}].role", "the last message must be the assistant's response")
            return ""
        if messages and not messages[-1]["content"].strip():
            self._empty(row, f"{field}[{len(messages) - 1}].content")
        return messages[-1]["content"] if messages else ""

    def _dpo_implicit(self, row: Row, chosen, rejected) -> tuple[list[dict], bool, str, str]:
        """No `prompt`: take it from what chosen and rejected share (HH-RLHF strings or message lists)."""
        if isinstance(chosen, str) and isinstance(rejected, str):
            return self._hh_split(row, self.text(row, chosen, "chosen"), self.text(row, rejected, "rejected"))
        if isinstance(chosen, list) and isinstance(rejected, list):
            c, r = self.messages(row, chosen, "chosen"), self.messages(row, rejected, "rejected")
            if not row.ok:
                return [], True, "", ""
            if len(c) < 2 or len(r) != len(c) or c[:-1] != r[:-1]:
                row.err(
                    "rejected", "without a 'prompt' field, chosen and rejected must share every message but the last"
                )
            for field, messages in (("chosen", c), ("rejected", r)):
                last = f"{field}[{len(messages) - 1}]"
                if messages[-1]["role"] != "assistant":
                    row.err(f"{last}.role", "the last message must be the assistant's response")
                elif not messages[-1]["content"].strip():
                    self._empty(row, f"{last}.content")
            return c[:-1], True, c[-1]["content"], r[-1]["content"]
        for field, value in (("chosen", chosen), ("rejected", rejected)):
            if not isinstance(value, (str, list)):
                self.text(row, value, field)
        if row.ok:
            row.err("rejected", "must be the same kind as 'chosen' (both strings or both message lists)")
        return [], False, "", ""

    def _hh_split(self, row: Row, chosen: str, rejected: str) -> tuple[list[dict], bool, str, str]:
        if not row.ok:
            return [], True, "", ""
        cut = chosen[: _common_prefix_len(chosen, rejected)].rfind(_HH_ASSISTANT)
        if cut < 0:
            row.err(
                "chosen",
                "there is no 'prompt' field, and chosen/rejected share no "
                "'\\n\\nHuman: ... \\n\\nAssistant:' prefix to take the prompt from",
            )
            return [], True, "", ""
        start = cut + len(_HH_ASSISTANT)
        a, b = chosen[start:].strip(), rejected[start:].strip()
        for field, response in (("chosen", a), ("rejected", b)):
            if not response:
                self._empty(row, field)
        parts = _HH_TURN.split(chosen[:cut])
        messages = [{"role": "user", "content": parts[0].strip()}] if parts[0].strip() else []
        for role, content in zip(parts[1::2], parts[2::2], strict=False):
            messages.append({"role": "user" if role == "Human" else "assistant", "content": content.strip()})
        return messages, True, a, b

    def _ultrafeedback(self, row: Row, d: dict) -> list:
        key = "prompt" if "prompt" in d or "instruction" not in d else "instruction"
        prompt, is_chat = self.prompt(row, d.get(key, MISSING), key)
        completions = d.get("completions")
        if not isinstance(completions, list) or len(completions) < 2:
            row.err("completions", "must be a list of at least 2 completions, each {response, model, ratings}")
            return []
        items = []
        for i, completion in enumerate(completions):
            where = f"completions[{i}]"
            if not isinstance(completion, dict):
                row.err(where, f"must be an object with 'response', 'model' and ratings, not {kind_of(completion)}")
                continue
            response = self.response(row, completion.get("response", MISSING), f"{where}.response")
            items.append((i, response, self.name(row, completion.get("model"), f"{where}.model"), _score(completion)))
        meta = self.metadata(row, d, ULTRAFEEDBACK_KEYS)
        if not row.ok:
            return []
        if self.ultrafeedback_pairs == "all":
            combos = itertools.combinations(items, 2)
        else:
            unscored = [i for i, _, _, score in items if score is None]
            if unscored:
                row.err(
                    f"completions[{unscored[0]}]",
                    "has no score (overall_score, ratings or annotations); best-vs-rest needs one for every completion",
                )
                return []
            best = max(items, key=lambda item: item[3])
            combos = [(best, other) for other in items if other is not best]
        records = []
        for (i, a, model_a, score_a), (j, b, model_b, score_b) in combos:
            preference = "" if score_a is None or score_b is None or score_a == score_b else "AB"[score_a < score_b]
            extra = {"score_a": score_a, "score_b": score_b, "completion_a": i, "completion_b": j}
            records.append(
                self.make(
                    row,
                    prompt,
                    is_chat,
                    a,
                    b,
                    model_a,
                    model_b,
                    meta,
                    extra=extra,
                    id_suffix=f":{i}-{j}",
                    source_preference=preference,
                )
            )
        return records


def _common_prefix_len(a: str, b: str) -> int:
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:  # binary search with C-speed slice comparisons
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo
