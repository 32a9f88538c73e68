"""Exports: the files load with HF datasets in every format, splits keep prompts apart, re-runs are byte-identical,
CSV is formula-safe; the AlpacaEval file runs through a recipe end to end."""

import csv
import json

import pyarrow as pa
import pytest
from datasets import load_dataset, load_from_disk
from django.core.management import call_command

from annotation.imports.importer import pairs_import
from annotation.models import Label, Pair
from tests.factories import make_pairs
from tests.services import alpacaeval_pairs
from tests.training.conftest import labelled
from training.models import DatasetExport
from training.services.exports import export_create
from training.services.recipes import recipe_save
from training.storage import export_root

pytestmark = pytest.mark.django_db


def path(export, name):
    return export_root() / export.files[name]["path"]


@pytest.mark.parametrize("fmt", ["dpo", "kto"])
@pytest.mark.parametrize("conversational", [False, True])
def test_every_format_loads_with_hf_datasets(project, lead, fmt, conversational):
    labelled(project)
    recipe = recipe_save(project=project, name="majority", config={"source": "human"}, user=lead)
    export = export_create(project=project, recipe=recipe, fmt=fmt, user=lead, conversational=conversational,
                           test_fraction=0.25)  # fmt: skip
    assert export.state == DatasetExport.State.SUCCEEDED, export.error
    columns = {"dpo": {"prompt", "chosen", "rejected", "margin", "pair_id"},
               "kto": {"prompt", "completion", "label", "pair_id"}}[fmt]  # fmt: skip
    train_rows = export.rows_train * (2 if fmt == "kto" else 1)
    jsonl = load_dataset("json", data_files=str(path(export, "train.jsonl")), split="train")
    parquet = load_dataset("parquet", data_files=str(path(export, "train.parquet")), split="train")
    folder = load_from_disk(str(export_root() / export.files["hf"]["path"]))
    for ds in (jsonl, parquet, folder["train"]):
        assert set(ds.column_names) == columns and len(ds) == train_rows
    assert set(folder) == {"train", "test"}
    assert folder["train"].to_list() == parquet.to_list() == jsonl.to_list()  # the same rows in every file
    assert folder["test"].to_list() == load_dataset("parquet", data_files=str(path(export, "test.parquet")))[
        "train"].to_list()  # fmt: skip
    row = parquet[0]
    if conversational:
        assert isinstance(row["prompt"], list) and row["prompt"][-1]["role"] == "user"
        key = "chosen" if fmt == "dpo" else "completion"
        assert row[key] == [{"role": "assistant", "content": row[key][0]["content"]}]
        multi = next(r for split in folder.values() for r in split if len(r["prompt"]) == 4)
        assert [m["role"] for m in multi["prompt"]] == ["system", "user", "assistant", "user"]  # turn order kept
    else:
        assert isinstance(row["prompt"], str)
    if fmt == "kto":
        assert set(jsonl["label"]) == {True, False}


def test_the_datasets_folder_downloads_as_one_zip(project, lead, tmp_path):
    import zipfile

    labelled(project)
    recipe = recipe_save(project=project, name="r", config={"source": "human"}, user=lead)
    export = export_create(project=project, recipe=recipe, fmt="dpo", user=lead, test_fraction=0.25)
    with zipfile.ZipFile(path(export, "hf.zip")) as archive:
        archive.extractall(tmp_path)
    unzipped = load_from_disk(str(tmp_path / "hf"))
    folder = load_from_disk(str(export_root() / export.files["hf"]["path"]))
    assert {s: unzipped[s].to_list() for s in unzipped} == {s: folder[s].to_list() for s in folder}
    assert len(unzipped["train"]) == export.rows_train and len(unzipped["test"]) == export.rows_test


def test_rerun_on_unchanged_data_is_byte_identical(project, lead):
    labelled(project)
    recipe = recipe_save(project=project, name="r", config={"source": "human"}, user=lead)
    first = export_create(project=project, recipe=recipe, fmt="dpo", user=lead)
    second = export_create(project=project, recipe=recipe, fmt="dpo", user=lead)
    assert first.content_hash == second.content_hash
    for name in ("train.jsonl", "train.parquet", "train.csv", "test.jsonl", "test.parquet", "hf.zip"):
        assert first.files[name]["sha256"] == second.files[name]["sha256"], name
    assert first.public_id != second.public_id


def test_recipe_versions_and_datasheet(project, lead):
    labelled(project)
    v1 = recipe_save(project=project, name="r", config={"source": "human"}, user=lead)
    assert recipe_save(project=project, name="r", config={"source": "human"}, user=lead) == v1
    v2 = recipe_save(project=project, name="r", config={"source": "human", "min_vote_margin": 0.5}, user=lead)
    assert (v1.version, v2.version) == (1, 2)
    export = export_create(project=project, recipe=v2, fmt="dpo", user=lead)
    sheet = json.loads(path(export, "datasheet.json").read_text())
    assert sheet["recipe"]["version"] == 2 and sheet["content_hash"] == export.content_hash
    assert sheet["funnel"][0]["rows_in"] == 12 and sheet["human_agreement"]["fleiss_kappa"]["value"] is not None
    assert "## Funnel" in path(export, "datasheet.md").read_text()


def test_csv_cells_that_look_like_formulas_are_neutralised(project, lead):
    [pair] = make_pairs(project, 1)
    Pair.objects.filter(pk=pair.pk).update(prompt=[{"role": "user", "content": "=HYPERLINK(\"http://x\")"}],
                                           response_a="+1 call me", response_b="@SUM(A1)")  # fmt: skip
    Label.objects.create(project=project, pair=pair, source="external", external_annotator="x", choice="A")
    recipe = recipe_save(project=project, name="r", config={"source": "human"}, user=lead)
    export = export_create(project=project, recipe=recipe, fmt="dpo", user=lead, test_fraction=0.0)
    with open(path(export, "train.csv"), newline="") as f:
        [row] = list(csv.DictReader(f))
    assert row["prompt"] == '\'=HYPERLINK("http://x")' and row["chosen"] == "'+1 call me"
    assert row["rejected"] == "'@SUM(A1)"
    # the JSONL and Parquet keep the text as it is
    assert json.loads(path(export, "train.jsonl").read_text())["chosen"] == "+1 call me"


def test_alpacaeval_runs_through_a_judge_label_recipe_end_to_end(project, lead, tmp_path):
    pairs_import(project=project, path=alpacaeval_pairs(), fmt="pairs")
    out = tmp_path / "out"
    call_command("export_dataset", project.slug, "--recipe", "judges-agree", "--config",
                 json.dumps({"source": "human", "min_human_agreement": 1.0, "max_pairs_per_prompt": 2}),
                 "--out", str(out))  # fmt: skip
    export = DatasetExport.objects.get()
    funnel = {s["step"]: s for s in export.funnel}
    # the two GPT-4-turbo judge configurations of the file are its "annotators": with two of them a disagreement is
    # a level vote, so those pairs have no majority and go at the first step; ties go next
    assert funnel["preference"]["rows_in"] == Pair.objects.filter(project=project).count()
    assert funnel["preference"]["removed"] > 0 and funnel["ties"]["removed"] > 0
    assert export.rows_train > 1000 and export.rows_test > 0
    ds = load_from_disk(str(out / "hf"))
    assert len(ds["train"]) == export.rows_train
    assert set(ds["train"]["prompt"]).isdisjoint(set(ds["test"]["prompt"]))


@pytest.mark.django_db(transaction=True)
def test_a_large_export_is_built_by_a_worker(project, lead, settings, monkeypatch):
    from tests.worker import celery_worker, wait_for
    from training.services import exports as services

    labelled(project)
    monkeypatch.setattr(services, "INLINE_EXPORT_MAX_PAIRS", 5)  # this project counts as large
    recipe = recipe_save(project=project, name="r", config={"source": "human"}, user=lead)
    export = export_create(project=project, recipe=recipe, fmt="dpo", user=lead)
    assert export.state == DatasetExport.State.QUEUED
    with celery_worker(extra_env={"EXPORT_ROOT": str(settings.EXPORT_ROOT)}):
        assert wait_for(lambda: DatasetExport.objects.get(pk=export.pk).state == "succeeded", timeout=120)
    export.refresh_from_db()
    assert export.rows_train + export.rows_test == 12 and export.stage == ""
    assert (
        load_dataset("json", data_files=str(path(export, "train.jsonl")), split="train").num_rows == export.rows_train
    )


@pytest.mark.parametrize("fmt", ["dpo", "kto"])
@pytest.mark.parametrize("conversational", [False, True])
def test_the_hf_folder_is_what_datasets_writes(tmp_path, fmt, conversational):
    """training/export/hf_folder.py writes the shard and the JSON files without importing ``datasets``: the same bytes
    and features as datasets' ArrowWriter and DatasetInfo."""
    from dataclasses import asdict

    from datasets import DatasetInfo, Features
    from datasets.arrow_writer import ArrowWriter

    from training.export import hf_folder
    from training.export.records import records, schema

    table_schema = schema(fmt, conversational=conversational)
    batches = []
    for start in (0, 2_400, 2_401):  # tables of 2,400 rows, 1 row and 1,700 rows: record batches of at most 1,000
        ids = list(range(start, start + {0: 2_400, 2_400: 1, 2_401: 1_700}[start]))
        prompts = [[{"role": "user", "content": f"q{i} ü"}] + ([{"role": "assistant", "content": "x"},
                   {"role": "user", "content": "again"}] if i % 3 == 0 else []) for i in ids]  # fmt: skip
        a, b = [f"a{i}" for i in ids], [f"b{i}" * (i % 4) for i in ids]
        items = records(ids, prompts, a, b, [i % 2 == 0 for i in ids], [i / 5_000 for i in ids],
                        [i % 7 == 0 for i in ids], fmt, conversational=conversational)  # fmt: skip
        batches.append(pa.table([pa.array([item[f.name] for item in items], type=f.type) for f in table_schema],
                                schema=table_schema))  # fmt: skip
    theirs = ArrowWriter(features=Features.from_arrow_schema(table_schema), path=str(tmp_path / "theirs.arrow"))
    ours = hf_folder.ShardWriter(tmp_path / "ours.arrow", table_schema)
    for table in batches:
        theirs.write_table(table)
        ours.write(table)
    theirs.finalize()
    ours.close()
    assert (tmp_path / "ours.arrow").read_bytes() == (tmp_path / "theirs.arrow").read_bytes()
    info = asdict(DatasetInfo(features=Features.from_arrow_schema(table_schema)))
    assert hf_folder.dataset_info(table_schema) == {key: info[key] for key in sorted(info)}
    assert list(hf_folder.dataset_info(table_schema)) == sorted(info)


@pytest.mark.parametrize("fmt", ["dpo", "kto"])
@pytest.mark.parametrize("conversational", [False, True])
def test_jsonl_lines_are_one_dumps_per_record(fmt, conversational):
    """exports.jsonl cuts one orjson.dumps of the list into lines: the same bytes as a dumps per record, even when
    a text holds the separator, quotes, braces, new lines or other scripts."""
    import orjson

    from training.export.records import jsonl, records

    tricky = ['},{"prompt":', '"},{"prompt":"', "}\n{", '\\"', "", "é 漢字 😀", "\u2028", "a\tb\r\n", '{"prompt":[]}']
    n = len(tricky)
    prompts = [[{"role": "user", "content": t}] + ([{"role": "assistant", "content": t}] if i % 2 else [])
               for i, t in enumerate(tricky)]  # fmt: skip
    swap, margin, both_bad = [i % 2 == 0 for i in range(n)], [i / 7 for i in range(n)], [i % 3 == 0 for i in range(n)]
    items = records(list(range(n)), prompts, tricky, tricky[::-1], swap, margin, both_bad, fmt,
                    conversational=conversational)  # fmt: skip
    assert jsonl(items) == b"".join(orjson.dumps(item, option=orjson.OPT_APPEND_NEWLINE) for item in items)
    assert jsonl(items[:1]) == orjson.dumps(items[0], option=orjson.OPT_APPEND_NEWLINE)
    assert jsonl([]) == b""
