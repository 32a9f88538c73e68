"""Pair import: formats, file types, dedupe, the real AlpacaEval file, the command and the task.
Bad input is covered in test_import_errors.py."""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command

from annotation.imports import importer
from annotation.imports.importer import ImportRejected, import_progress, pairs_import
from annotation.models import Choice, ImportBatch, Label, Pair
from annotation.tasks import import_batch_run_task
from tests.services import alpacaeval_pairs


def write_jsonl(tmp_path: Path, rows: list, name: str = "data.jsonl") -> Path:
    path = tmp_path / name
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    return path


def pair_row(i: int, **extra) -> dict:
    return {"prompt": f"Question {i}?", "response_a": f"Answer A{i}", "response_b": f"Answer B{i}", **extra}


@pytest.fixture
def import_file(project, tmp_path):
    def run(rows, name="data.jsonl", **kwargs):
        return pairs_import(project=project, path=write_jsonl(tmp_path, rows, name), **kwargs)

    return run


def test_pairs_with_labels_and_metadata(project, lead, import_file):
    labels = [
        {"annotator": "judge-1", "preference": 1.0},
        {"annotator": "judge-2", "preference": 2},
        {"annotator": "judge-3", "preference": 1.5},
        {"annotator": "judge-4", "preference": "both_bad"},
        {"annotator": "judge-5", "preference": "B"},
    ]
    rows = [
        pair_row(1, id="x1", model_a="gpt", model_b="llama", labels=labels, source="helpful_base", metadata={"k": 1}),
        pair_row(2),
    ]
    batch = import_file(rows, user=lead)

    assert (batch.state, batch.detected_format, batch.rows_read) == (ImportBatch.State.SUCCEEDED, "pairs", 2)
    assert (batch.pairs_created, batch.duplicates_skipped, batch.labels_created) == (2, 0, 5)
    assert batch.created_by == lead and batch.finished_at is not None and batch.errors == []
    pair = Pair.objects.get(external_id="x1")
    assert pair.prompt == [{"role": "user", "content": "Question 1?"}] and pair.prompt_is_chat is False
    assert (pair.response_a, pair.response_b, pair.model_a, pair.model_b) == ("Answer A1", "Answer B1", "gpt", "llama")
    assert pair.metadata == {"k": 1, "source": "helpful_base"}
    assert pair.source_preference == "" and pair.import_batch == batch
    expected = hashlib.sha256(orjson.dumps([pair.prompt, sorted(["Answer A1", "Answer B1"])])).hexdigest()
    assert pair.content_hash == expected and pair.shuffle_key == int(expected[:8], 16) & 0x7FFFFFFF
    assert (pair.open_slots, pair.label_count) == (project.overlap_k, 0)
    got = {(label.external_annotator, label.choice) for label in pair.labels.all()}
    assert got == {("judge-1", "A"), ("judge-2", "B"), ("judge-3", "tie"), ("judge-4", "both_bad"), ("judge-5", "B")}
    assert set(Label.objects.values_list("source", "project_id", "left_is_a")) == {("external", project.pk, None)}


def test_null_preference_is_skipped_with_a_warning(import_file):
    labels = [{"annotator": "a", "preference": 1}, {"annotator": "b", "preference": None}]
    batch = import_file([pair_row(1, labels=labels)])
    assert batch.labels_created == 1 and Label.objects.get().external_annotator == "a"
    assert batch.warnings == [
        "data.jsonl, line 1, field 'labels[1].preference': the preference is null; this label was skipped"
    ]


def test_multi_turn_prompt_keeps_every_turn_in_order(import_file):
    turns = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "What is 2+2?"},
    ]
    import_file([{"prompt": turns, "response_a": "4", "response_b": "5"}])
    pair = Pair.objects.get()
    assert pair.prompt == turns and pair.prompt_is_chat is True


def test_dpo_strings(import_file):
    batch = import_file([{"prompt": "Q?", "chosen": "good", "rejected": "bad", "chosen_model": "m1"}])
    pair = Pair.objects.get()
    assert batch.detected_format == "dpo"
    assert (pair.response_a, pair.response_b, pair.source_preference, pair.model_a) == ("good", "bad", "A", "m1")


def test_dpo_conversational_with_explicit_prompt(import_file):
    prompt = [{"role": "user", "content": "Q?"}]
    import_file(
        [
            {
                "prompt": prompt,
                "chosen": [{"role": "assistant", "content": "good"}],
                "rejected": [{"role": "assistant", "content": "bad"}],
            }
        ]
    )
    pair = Pair.objects.get()
    assert (pair.prompt, pair.prompt_is_chat, pair.response_a, pair.response_b) == (prompt, True, "good", "bad")


def test_dpo_implicit_hh_rlhf_prompt(import_file):
    shared = "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: What is 2+2?\n\nAssistant:"
    import_file([{"chosen": shared + " It is 4.", "rejected": shared + " It is 5."}])
    pair = Pair.objects.get()
    assert pair.prompt == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "What is 2+2?"},
    ]
    assert (pair.prompt_is_chat, pair.response_a, pair.response_b, pair.source_preference) == (
        True,
        "It is 4.",
        "It is 5.",
        "A",
    )


def test_dpo_implicit_conversational_prompt(import_file):
    shared = [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Q?"}]
    import_file(
        [
            {
                "chosen": [*shared, {"role": "assistant", "content": "good"}],
                "rejected": [*shared, {"role": "assistant", "content": "bad"}],
            }
        ]
    )
    pair = Pair.objects.get()
    assert (pair.prompt, pair.response_a, pair.response_b) == (shared, "good", "bad")


def ultrafeedback_row() -> dict:
    return {
        "prompt": "Write a haiku.",
        "source": "flan",
        "completions": [
            {"model": "m0", "response": "r0", "overall_score": 6.5},
            {"model": "m1", "response": "r1", "ratings": {"helpfulness": 4, "honesty": 5}},
            {"model": "m2", "response": "r2", "annotations": {"honesty": {"Rating": "2"}, "truth": {"Rating": "N/A"}}},
        ],
    }


def test_ultrafeedback_all_pairs(import_file):
    batch = import_file([ultrafeedback_row()])
    assert batch.detected_format == "ultrafeedback" and batch.pairs_created == 3
    pairs = {(p.model_a, p.model_b): p for p in Pair.objects.all()}
    assert set(pairs) == {("m0", "m1"), ("m0", "m2"), ("m1", "m2")}
    first = pairs["m0", "m1"]
    assert first.metadata == {"source": "flan", "score_a": 6.5, "score_b": 4.5, "completion_a": 0, "completion_b": 1}
    assert first.source_preference == "A" and pairs["m1", "m2"].source_preference == "A"


def test_ultrafeedback_best_vs_rest(import_file):
    row = ultrafeedback_row()
    row["completions"].append({"model": "m3", "response": "r3", "overall_score": 9})
    batch = import_file([row], ultrafeedback_pairs="best-vs-rest")
    assert batch.pairs_created == 3
    assert set(Pair.objects.values_list("model_a", "model_b", "source_preference")) == {
        ("m3", "m0", "A"),
        ("m3", "m1", "A"),
        ("m3", "m2", "A"),
    }


def test_json_array(project, tmp_path):
    path = tmp_path / "pairs.json"
    path.write_bytes(orjson.dumps([pair_row(1), pair_row(2, labels=[{"annotator": "x", "preference": "A"}])]))
    batch = pairs_import(project=project, path=path)
    assert (batch.pairs_created, batch.labels_created) == (2, 1)


def test_csv_with_json_cells(project, tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text(
        "prompt,response_a,response_b,labels,metadata,topic\n"
        '"Multi\nline?",a1,b1,"[{""annotator"": ""x"", ""preference"": 2}]","{""k"": 1}",maths\n'
        '"[{""role"": ""user"", ""content"": ""Hi""}]",a2,b2,,,\n',
        encoding="utf-8",
    )
    batch = pairs_import(project=project, path=path)
    assert (batch.pairs_created, batch.labels_created) == (2, 1)
    first = Pair.objects.get(response_a="a1")
    assert first.prompt == [{"role": "user", "content": "Multi\nline?"}] and first.metadata == {
        "k": 1,
        "topic": "maths",
    }
    assert Label.objects.get().choice == Choice.B
    assert Pair.objects.get(response_a="a2").prompt == [{"role": "user", "content": "Hi"}]


def test_csv_from_excel_with_bom_and_crlf(project, tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbfid,prompt,response_a,response_b\r\n7,Q?,yes,no\r\n\r\n")
    batch = pairs_import(project=project, path=path)
    assert batch.pairs_created == 1 and Pair.objects.get().external_id == "7"


def test_parquet(project, tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.Table.from_pylist(
        [
            {"prompt": "Q1", "chosen": "good", "rejected": "bad", "id": "r1"},
            {"prompt": "Q2", "chosen": "fine", "rejected": "poor", "id": None},
        ]
    )
    pq.write_table(table, tmp_path / "train.parquet", row_group_size=1)
    batch = pairs_import(project=project, path=tmp_path / "train.parquet")
    assert (batch.detected_format, batch.pairs_created) == ("dpo", 2)
    assert set(Pair.objects.values_list("external_id", flat=True)) == {"r1", ""}


def test_file_type_from_content_when_extension_is_unknown(project, tmp_path):
    path = tmp_path / "upload-1234"
    path.write_bytes(orjson.dumps([pair_row(1)]))
    assert pairs_import(project=project, path=path, filename="mine.txt").pairs_created == 1


def test_reimport_creates_nothing_and_counts_duplicates(import_file):
    rows = [pair_row(1, labels=[{"annotator": "x", "preference": 1}]), pair_row(2)]
    # The same content with A and B swapped is the same pair.
    rows.append({"prompt": "Question 1?", "response_a": "Answer B1", "response_b": "Answer A1"})
    first = import_file(rows)
    assert (first.pairs_created, first.duplicates_skipped, first.labels_created) == (2, 1, 1)
    again = import_file(rows)
    assert (again.pairs_created, again.duplicates_skipped, again.labels_created) == (0, 3, 0)
    assert Pair.objects.count() == 2 and Label.objects.count() == 1


def test_writes_in_chunks_and_reports_progress(project, import_file, monkeypatch):
    monkeypatch.setattr(importer, "WRITE_CHUNK", 3)
    monkeypatch.setattr(importer, "PROGRESS_EVERY", 4)
    seen = []
    rows = [pair_row(i) for i in range(10)] + [pair_row(0)]
    batch = import_file(rows, on_progress=seen.append)
    assert (batch.pairs_created, batch.duplicates_skipped) == (10, 1)
    assert seen[-3:] == [4, 8, 11]
    progress = import_progress(batch)
    assert progress["rows_read"] == 11 and progress["bytes_read"] == progress["total_bytes"] > 0


def test_uses_a_queued_batch(project, lead, tmp_path):
    batch = ImportBatch.objects.create(project=project, created_by=lead, filename="shown.jsonl")
    result = pairs_import(project=project, path=write_jsonl(tmp_path, [pair_row(1)]), batch=batch)
    batch.refresh_from_db()
    assert result.pk == batch.pk and batch.state == ImportBatch.State.SUCCEEDED and batch.pairs_created == 1


def test_real_alpacaeval_file(project):
    batch = pairs_import(project=project, path=alpacaeval_pairs())
    assert (batch.state, batch.detected_format, batch.rows_read) == (ImportBatch.State.SUCCEEDED, "pairs", 4025)
    # 6 rows repeat an earlier row's prompt and response texts exactly (two models gave the same answer, e.g.
    # "Smart Home"); they differ only in model_b, so by content they are the same pair and are skipped.
    assert (batch.pairs_created, batch.duplicates_skipped, batch.labels_created) == (4019, 6, 8037)
    assert Pair.objects.filter(project=project).count() == 4019
    annotators = set(Label.objects.values_list("external_annotator", flat=True))
    assert annotators == {"alpaca_eval_gpt4_turbo_fn", "alpaca_eval_cot_gpt4_turbo_fn"}
    assert len(batch.warnings) == 2 and "preference" in batch.warnings[0]
    assert "63 empty responses (first: line 2520, field 'response_b') were imported" in batch.warnings[1]
    assert Pair.objects.filter(metadata__source="helpful_base").exists()


def test_command_imports_and_reports(project, tmp_path, capsys):
    path = write_jsonl(tmp_path, [pair_row(1, labels=[{"annotator": "x", "preference": 1}]), pair_row(2)])
    call_command("import_pairs", project.slug, str(path), "--format", "pairs")
    out = capsys.readouterr().out
    assert "Imported 2 pairs (0 duplicates skipped, 1 labels) from data.jsonl as pairs in" in out
    call_command("import_pairs", project.slug, str(path))
    assert "Imported 0 pairs (2 duplicates skipped, 0 labels)" in capsys.readouterr().out


def test_command_fails_with_the_error_report(project, tmp_path):
    path = write_jsonl(tmp_path, [pair_row(1), {"prompt": "Q", "response_a": "a", "response_b": 7}])
    with pytest.raises(CommandError, match=r"data.jsonl, line 2, field 'response_b': must be a non-empty string"):
        call_command("import_pairs", project.slug, str(path))
    assert Pair.objects.count() == 0
    with pytest.raises(CommandError, match="no project"):
        call_command("import_pairs", "nope", str(path))


def test_task_runs_a_queued_batch_once(project, lead, tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path
    write_jsonl(tmp_path, [pair_row(1), pair_row(2)], "upload.jsonl")
    batch = ImportBatch.objects.create(
        project=project,
        created_by=lead,
        filename="pairs.jsonl",
        upload="upload.jsonl",
        options={"ultrafeedback_pairs": "all"},
    )
    import_batch_run_task(batch.pk)
    batch.refresh_from_db()
    assert (batch.state, batch.pairs_created) == (ImportBatch.State.SUCCEEDED, 2)
    import_batch_run_task.run(batch.pk)  # a second delivery leaves the finished batch alone
    batch.refresh_from_db()
    assert (batch.pairs_created, batch.duplicates_skipped, Pair.objects.count()) == (2, 0, 2)


def test_task_records_a_rejected_file(project, tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path
    (tmp_path / "bad.jsonl").write_bytes(b'{"prompt": "Q"}\n')
    batch = ImportBatch.objects.create(project=project, filename="bad.jsonl", upload="bad.jsonl")
    import_batch_run_task(batch.pk)  # no exception: the errors are on the batch
    batch.refresh_from_db()
    assert batch.state == ImportBatch.State.FAILED and batch.error_count == 1
    assert "line 1" in batch.errors[0]["message"] and Pair.objects.count() == 0


def test_rejected_import_saves_the_failed_batch(project, import_file):
    with pytest.raises(ImportRejected) as caught:
        import_file([pair_row(1), {"prompt": "Q"}])
    batch = ImportBatch.objects.get()
    assert batch == caught.value.batch and batch.state == ImportBatch.State.FAILED and batch.pairs_created == 0
    assert cache.get(f"import-progress:{batch.pk}") is not None
