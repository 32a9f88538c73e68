"""Pair import, bad input: every case names the file, the line/item/row and the field, and writes nothing."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from annotation.imports import importer
from annotation.imports.errorlog import human_size
from annotation.imports.importer import ImportRejected, pairs_import
from annotation.models import ImportBatch, Label, Pair

GOOD = {"prompt": "Q?", "response_a": "yes", "response_b": "no"}


def jsonl(*rows) -> bytes:
    return b"".join((row if isinstance(row, bytes) else orjson.dumps(row)) + b"\n" for row in rows)


@pytest.fixture
def reject(project, tmp_path):
    """Import bytes (or a path) that must fail; checks nothing was written and returns the failed batch."""

    def run(content: bytes | Path, name: str = "data.jsonl", **kwargs) -> ImportBatch:
        path = content if isinstance(content, Path) else tmp_path / name
        if not isinstance(content, Path):
            path.write_bytes(content)
        with pytest.raises(ImportRejected) as caught:
            pairs_import(project=project, path=path, **kwargs)
        assert Pair.objects.count() == 0 and Label.objects.count() == 0
        batch = caught.value.batch
        batch.refresh_from_db()
        assert batch.state == ImportBatch.State.FAILED and batch.error_count >= 1 and batch.pairs_created == 0
        return batch

    return run


def messages(batch: ImportBatch) -> str:
    return "\n".join(error["message"] for error in batch.errors)


def test_file_over_the_size_limit_is_refused_before_reading(reject, settings):
    settings.IMPORT_MAX_BYTES = 10
    batch = reject(jsonl(GOOD))
    assert messages(batch) == f"data.jsonl is {len(jsonl(GOOD))} bytes; the limit is 10 bytes (IMPORT_MAX_BYTES)."
    assert human_size(600 * 1024 * 1024) == "600 MB" and human_size(512 * 1024 * 1024) == "512 MB"


def test_invalid_utf8_names_line_byte_and_column(reject):
    batch = reject(jsonl(GOOD, b'{"prompt": "caf\xe9", "response_a": "a", "response_b": "b"}'))
    assert batch.errors == [
        {
            "line": 2,
            "field": None,
            "message": "data.jsonl, line 2: not valid UTF-8 (byte 0xe9 at column 16); save the file as UTF-8",
        }
    ]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32"])
def test_utf16_and_utf32_are_refused(reject, encoding):
    batch = reject(jsonl(GOOD).decode().encode(encoding))
    assert "data.jsonl, line 1" in messages(batch) and "save the file as UTF-8" in messages(batch)


def test_utf8_bom_and_blank_lines_are_accepted(project, tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + jsonl(GOOD) + b"\n  \n" + jsonl({**GOOD, "response_b": "maybe"}) + b"\r\n")
    batch = pairs_import(project=project, path=path)
    assert batch.pairs_created == 2 and batch.warnings == ["data.jsonl: skipped 3 empty lines"]


def test_nul_bytes(reject):
    batch = reject(
        jsonl(
            GOOD, GOOD, b'{"prompt": "Q\x00", "response_a": "a", "response_b": "b"}', {**GOOD, "response_a": "x\u0000y"}
        )
    )
    assert batch.errors[0]["line"] == 3 and "data.jsonl, line 3: contains a NUL byte" in messages(batch)
    assert "data.jsonl, line 4, field 'response_a': contains a NUL character" in messages(batch)


def test_invalid_json_and_non_objects(reject):
    batch = reject(jsonl(GOOD, b'{"prompt": "Q", "response_a": tru}', b"[1, 2]", b'"text"'))
    assert "data.jsonl, line 2: invalid JSON: " in messages(batch)
    assert "data.jsonl, line 3: each record must be a JSON object, not an array" in messages(batch)
    assert [e["line"] for e in batch.errors] == [2, 3, 4]


def test_deep_nesting_is_an_error_not_a_crash(reject):
    deep = b'{"prompt": ' + b"[" * 5000 + b"]" * 5000 + b', "response_a": "a", "response_b": "b"}'
    # 400 levels: fine for orjson to read, too deep to write back (orjson.dumps stops at 254).
    nested_meta = orjson.dumps(GOOD)[:-1] + b', "metadata": ' + b'{"x": ' * 400 + b"{}" + b"}" * 400 + b"}"
    batch = reject(jsonl(GOOD, deep, nested_meta))
    assert "data.jsonl, line 2: invalid JSON: nested deeper than 1024 levels" in messages(batch)
    assert "data.jsonl, line 3, field 'metadata': metadata is nested more than 254 levels deep" in messages(batch)


BAD_FIELDS = [
    ({"prompt": "Q", "response_a": "a"}, "response_b", "must be a non-empty string; the field is missing"),
    ({**GOOD, "prompt": ""}, "prompt", "must be a non-empty string"),
    ({**GOOD, "prompt": "  \n"}, "prompt", "must be a non-empty string"),
    ({**GOOD, "response_a": 5}, "response_a", "must be a non-empty string, not a number"),
    ({**GOOD, "response_a": None}, "response_a", "must be a non-empty string; got null"),
    ({**GOOD, "response_a": "", "response_b": " "}, "response_b", "both responses are empty"),
    ({**GOOD, "model_a": "m" * 201}, "model_a", "is 201 characters long; the limit is 200"),
    ({**GOOD, "id": True}, "id", "must be a string, not true/false"),
    ({**GOOD, "metadata": [1]}, "metadata", "must be an object, not an array"),
    ({**GOOD, "prompt": [{"role": "bot", "content": "hi"}]}, "prompt[0].role", "must be one of system, user"),
    ({**GOOD, "prompt": [{"role": "user"}]}, "prompt[0].content", "the field is missing"),
    ({**GOOD, "prompt": []}, "prompt", "must be a non-empty list of {role, content} messages"),
    ({**GOOD, "labels": {"a": 1}}, "labels", "must be a list"),
    ({**GOOD, "labels": [{"annotator": "x", "preference": 3}]}, "labels[0].preference", "must be 1 or 'A'"),
    ({**GOOD, "labels": [{"annotator": "x", "preference": True}]}, "labels[0].preference", "not True"),
    ({**GOOD, "labels": [{"annotator": "x"}]}, "labels[0].preference", "not missing"),
    ({**GOOD, "labels": [{"preference": 1}]}, "labels[0].annotator", "the field is missing"),
    (
        {**GOOD, "labels": [{"annotator": "x", "preference": 1}, {"annotator": "x", "preference": 2}]},
        "labels[1].annotator",
        "repeats annotator 'x'",
    ),
]


@pytest.mark.parametrize(("row", "field", "text"), BAD_FIELDS, ids=[f for _, f, _ in BAD_FIELDS])
def test_bad_field(reject, row, field, text):
    batch = reject(jsonl(GOOD, row))
    error = batch.errors[0]
    assert (error["line"], error["field"]) == (2, field)
    assert error["message"].startswith(f"data.jsonl, line 2, field '{field}': ") and text in error["message"]


BAD_DPO_AND_ULTRAFEEDBACK = [
    ({"prompt": "Q", "chosen": [{"role": "user", "content": "a"}], "rejected": "b"}, "chosen[0].role", "assistant"),
    ({"chosen": "\n\nHuman: A\n\nAssistant: x", "rejected": "Something else"}, "chosen", "share no"),
    (
        {
            "chosen": [{"role": "user", "content": "A"}, {"role": "assistant", "content": "x"}],
            "rejected": [{"role": "user", "content": "B"}, {"role": "assistant", "content": "y"}],
        },
        "rejected",
        "share",
    ),
    ({"chosen": "x", "rejected": [{"role": "assistant", "content": "y"}]}, "rejected", "same kind"),
    ({"prompt": "Q", "completions": [{"response": "only one"}]}, "completions", "at least 2"),
    ({"prompt": "Q", "completions": [{"model": "m"}, {"response": "r"}]}, "completions[0].response", "missing"),
]


@pytest.mark.parametrize(
    ("row", "field", "text"), BAD_DPO_AND_ULTRAFEEDBACK, ids=[f for _, f, _ in BAD_DPO_AND_ULTRAFEEDBACK]
)
def test_bad_dpo_and_ultrafeedback_fields(reject, row, field, text):
    batch = reject(jsonl(row))
    assert batch.errors[0]["field"] == field and f"data.jsonl, line 1, field '{field}': " in messages(batch)
    assert text in messages(batch)


def test_best_vs_rest_needs_scores(reject):
    row = {"prompt": "Q", "completions": [{"response": "a", "overall_score": 3}, {"response": "b"}]}
    batch = reject(jsonl(row), ultrafeedback_pairs="best-vs-rest")
    assert "line 1, field 'completions[1]': has no score" in messages(batch)


def test_field_longer_than_the_limit(reject, settings):
    settings.IMPORT_MAX_FIELD_CHARS = 20
    batch = reject(jsonl(GOOD, {**GOOD, "response_a": "x" * 21}, {**GOOD, "metadata": {"note": "y" * 30}}))
    assert (
        "data.jsonl, line 2, field 'response_a': is 21 characters long; the limit is 20 (IMPORT_MAX_FIELD_CHARS)"
        in messages(batch)
    )
    assert "data.jsonl, line 3, field 'metadata': metadata is 41 characters as JSON" in messages(batch)


@pytest.mark.parametrize(
    ("content", "name"),
    [(b"", "data.jsonl"), (b"\n\n", "data.jsonl"), (b"[ ]", "data.json"), (b"prompt,response_a,response_b\n", "d.csv")],
)
def test_empty_file(reject, content, name):
    assert messages(reject(content, name)) == f"{name}: contains no records"


def test_unknown_options(reject):
    assert "unknown format 'xml'; use one of pairs, dpo, ultrafeedback" in messages(reject(jsonl(GOOD), fmt="xml"))
    assert "unknown file format 'xlsx'" in messages(reject(jsonl(GOOD), file_format="xlsx"))
    assert "unknown ultrafeedback_pairs 'some'" in messages(reject(jsonl(GOOD), ultrafeedback_pairs="some"))


def test_record_matching_no_format(reject):
    batch = reject(jsonl({"question": "Q", "answer": "A"}))
    assert "data.jsonl, line 1: matches no known format: expected keys prompt/response_a/response_b (pairs)" in (
        messages(batch)
    )
    assert "found keys: answer, question" in messages(batch)


def test_explicit_format_that_does_not_fit(reject):
    batch = reject(jsonl(GOOD), fmt="dpo")
    assert "data.jsonl, line 1, field 'chosen': must be a non-empty string; the field is missing" in messages(batch)


def test_every_error_is_counted_and_the_report_is_readable(reject):
    batch = reject(jsonl(GOOD, *[{"prompt": f"Q{i}", "response_a": "a"} for i in range(60)]))
    assert batch.error_count == 60 and len(batch.errors) == 50 and batch.errors[-1]["line"] == 51
    report = str(ImportRejected(batch))
    assert report.splitlines()[0] == "data.jsonl: 60 errors; nothing was imported."
    assert report.splitlines()[-1] == "... and 10 more errors" and len(report.splitlines()) == 52


def test_rows_already_written_are_rolled_back(reject, monkeypatch, project):
    monkeypatch.setattr(importer, "WRITE_CHUNK", 2)
    rows = [{**GOOD, "response_a": f"yes {i}", "labels": [{"annotator": "x", "preference": 1}]} for i in range(10)]
    batch = reject(jsonl(*rows, {"prompt": "Q"}, *rows))
    assert batch.errors[0]["line"] == 11 and batch.rows_read == 21


def test_json_array_errors_name_the_item(reject):
    content = b"[" + orjson.dumps(GOOD) + b', {"prompt": "Q", "response_a": "a"}, {"x": tru}, ]'
    batch = reject(content, "pairs.json")
    assert "pairs.json, item 2, field 'response_b': must be a non-empty string" in messages(batch)
    assert "pairs.json, item 3: invalid JSON" in messages(batch)
    assert "pairs.json, item 4: invalid JSON: an empty item (a stray or trailing comma)" in messages(batch)
    unclosed = reject(b"[" + orjson.dumps(GOOD) + b",", "open.json")
    assert "open.json, item 2: the file ends before the JSON array is closed" in messages(unclosed)


def test_csv_errors_name_the_physical_line(reject):
    content = b'prompt,response_a,response_b,labels\n"two\nlines",a,b,\nQ,,,\nQ2,a,b,[oops\nQ3,a\n' + b"Q4,caf\xe9,b,\n"
    batch = reject(content, "pairs.csv")
    assert "pairs.csv, line 4, field 'response_b': both responses are empty" in messages(batch)
    assert "pairs.csv, line 5, field 'labels': the cell must hold JSON; invalid JSON" in messages(batch)
    assert "pairs.csv, line 6: has 2 cells; the header row has 4 columns" in messages(batch)
    assert "pairs.csv, line 7: not valid UTF-8 (byte 0xe9 at column 7)" in messages(batch)


def test_parquet_errors_name_the_row(reject, tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    pq.write_table(pa.Table.from_pylist([GOOD, {**GOOD, "prompt": ""}]), tmp_path / "train.parquet")
    batch = reject(tmp_path / "train.parquet")
    assert batch.errors[0]["line"] == 2
    assert messages(batch) == "train.parquet, row 2, field 'prompt': must be a non-empty string"
    garbage = reject(b"PAR1 not really", "broken.parquet")
    assert "broken.parquet: not a valid Parquet file" in messages(garbage)
