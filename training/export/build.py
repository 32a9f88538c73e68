"""Building an export: curate the project's pairs with the recipe, split by prompt group, write every file and the
datasheet, then mark the export ready (a worker runs this for large projects, the request or the command for small
ones)."""

from __future__ import annotations

import ctypes
import gc
import json
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
from django.utils import timezone

from annotation.models import Project
from annotation.selectors import project_agreement_figures

from ..curation.candidates import curation_candidates
from ..curation.recipe import RecipeConfig
from ..curation.steps import STEPS, chosen_longer_share, curate
from ..models import DatasetExport
from ..storage import export_folder, export_root
from . import hf_folder, writers
from .datasheet import datasheet_markdown
from .records import schema
from .split import split_by_prompt


def export_build(export: DatasetExport, *, timings: dict | None = None, read_ahead: bool | None = None) -> None:
    """Curate, split, write every file and the datasheet, then mark the export ready. Safe to run twice: a
    finished export is left alone and a half-written folder is replaced. ``timings``, when given, receives the
    seconds each stage took (the export benchmark reads them); ``read_ahead`` forces how texts are read (default:
    ahead on a second connection where that is possible, training.curation.texts). The files are the same either
    way."""
    if export.state == DatasetExport.State.SUCCEEDED:
        return
    DatasetExport.objects.filter(pk=export.pk).update(state=DatasetExport.State.RUNNING, started_at=timezone.now())
    folder = export_folder(export)
    try:
        with _gc_paused():
            result = _build(export, folder, timings, read_ahead)
    except Exception as exc:
        shutil.rmtree(folder, ignore_errors=True)
        DatasetExport.objects.filter(pk=export.pk).update(
            state=DatasetExport.State.FAILED, error=f"{type(exc).__name__}: {exc}"[:2000], finished_at=timezone.now()
        )
        raise
    DatasetExport.objects.filter(pk=export.pk).update(
        state=DatasetExport.State.SUCCEEDED, stage="", finished_at=timezone.now(), **result
    )


@contextmanager
def _gc_paused():
    """No automatic cyclic garbage collection while a build runs: it makes millions of short-lived dicts and lists
    (parsed prompts, records), none in cycles, and every automatic collection walked all of them (it doubled the time
    to read the texts). The build collects once after each stage instead."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


RELEASE_MEMORY_FROM_PAIRS = 50_000


def _release_memory() -> None:
    """Free what a stage left in reference cycles (automatic collection is paused during the build) and hand freed
    heap memory back to the operating system: glibc keeps freed large blocks in the heap, so a worker that built
    one large export would otherwise stay at its peak."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass
    pa.default_memory_pool().release_unused()  # Arrow's own allocator (mimalloc) keeps freed pages too


def _stage(export: DatasetExport, text: str) -> None:
    DatasetExport.objects.filter(pk=export.pk).update(stage=text[:100])


def _build(export: DatasetExport, folder: Path, timings: dict | None, read_ahead: bool | None) -> dict:
    config = RecipeConfig.from_dict(export.recipe.config)
    kto = export.format == DatasetExport.Format.KTO
    clock = time.perf_counter()
    # Between the stages of a large build, memory is freed (a full collection walks the whole heap: ~80 ms each in a
    # process with torch loaded, for nothing when the build holds a few thousand rows)
    release = export.project.pairs.count() >= RELEASE_MEMORY_FROM_PAIRS

    def lap(name: str) -> None:
        nonlocal clock
        if release:
            _release_memory()  # part of the stage: what it leaves behind is freed before the next one starts
        now = time.perf_counter()
        if timings is not None:
            timings[name] = now - clock
            timings.setdefault("ends", {})[name] = now  # perf_counter at the stage's end
        clock = now

    _stage(export, "reading pairs, labels and verdicts")
    # first, while little else is in memory: at a million labels this is the largest single step (docs/PERFORMANCE.md)
    agreement = agreement_for_datasheet(export.project)
    lap("datasheet_agreement_s")
    candidates = curation_candidates(export.project, criterion=config.criterion, composite=config.composite,
                                     read_ahead=read_ahead)  # fmt: skip
    if export.pair_ids:  # a scoped export (a campaign round's pairs): the rest of the project is not curated
        candidates = candidates.take(np.isin(candidates.pair_id, np.asarray(export.pair_ids, dtype=np.int64)))
    lap("read_arrays_s")
    _stage(export, f"curating {len(candidates):,} pairs")
    rows, funnel = curate(candidates, config, kto=kto, timings=timings)
    del candidates
    is_test = split_by_prompt(rows, test_fraction=export.test_fraction, seed=export.seed)
    lap("curate_s")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    root = export_root()
    rows_test = int(is_test.sum())
    rows_train = len(rows) - rows_test
    _stage(export, f"writing train and test ({rows_train:,} and {rows_test:,} rows)")
    out = writers.write_splits(folder, rows, is_test, export.format, conversational=export.conversational,
                             timings=timings)  # fmt: skip
    lap("write_s")
    content_hash = out["content_hash"]
    written = {name: writers.file_entry(path, root, sha256=out["jsonl_sha256"].get(name))
               for name, path in sorted(out["paths"].items(), key=lambda item: _FILE_ORDER.index(item[0]))}  # fmt: skip
    lap("file_hashes_s")
    _stage(export, "writing the datasets folder and the datasheet")
    splits = [split for split in ("train", "test") if f"{split}.jsonl" in out["paths"]]
    table_schema = schema(export.format, conversational=export.conversational)
    hf_folder.finish(folder / "hf", splits, table_schema, content_hash)
    written["hf"] = {"path": str((folder / "hf").relative_to(root)), "bytes": _folder_bytes(folder / "hf")}
    lap("hf_folder_s")
    writers.zip_folder(folder / "hf", folder / "hf.zip")
    written["hf.zip"] = writers.file_entry(folder / "hf.zip", root)
    lap("hf_zip_s")
    sheet = {
        "export": str(export.public_id),
        "project": export.project.slug,
        "recipe": {"name": export.recipe.name, "version": export.recipe.version, "config": config.as_dict()},
        "format": export.format,
        "conversational": export.conversational,
        "split": {
            "test_fraction": export.test_fraction,
            "seed": export.seed,
            "by": "prompt group",
            "train_rows": rows_train,
            "test_rows": rows_test,
        },  # fmt: skip
        "content_hash": content_hash,
        "funnel": funnel.steps,
        "steps": list(STEPS),
        "sources": rows.sources(),
        "margin": _margin_summary(rows.margin),
        "chosen_longer_share": chosen_longer_share(rows),
        "human_agreement": agreement,
        "created_by": export.created_by.username if export.created_by else None,
        "created_at": export.created_at.isoformat(),
    }
    (folder / "datasheet.json").write_text(json.dumps(sheet, indent=2, sort_keys=True))
    markdown = datasheet_markdown(sheet)
    (folder / "datasheet.md").write_text(markdown)
    written["datasheet.md"] = writers.file_entry(folder / "datasheet.md", root)
    written["datasheet.json"] = writers.file_entry(folder / "datasheet.json", root)
    lap("datasheet_s")
    return {"content_hash": content_hash, "rows_train": rows_train, "rows_test": rows_test, "funnel": funnel.steps,
            "files": written, "datasheet": sheet, "datasheet_md": markdown}  # fmt: skip


# the order the export page lists the files in
_FILE_ORDER = ("train.jsonl", "train.parquet", "train.csv", "test.jsonl", "test.parquet", "test.csv")


def _folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _margin_summary(margins: np.ndarray) -> dict:
    if not len(margins):
        return {"n": 0}
    ordered = np.sort(margins).tolist()
    # the mean as a left-to-right sum of the sorted values, as it has always been computed
    return {"n": len(ordered), "min": ordered[0], "median": ordered[len(ordered) // 2], "max": ordered[-1],
            "mean": sum(ordered) / len(ordered)}  # fmt: skip


def agreement_for_datasheet(project: Project) -> dict:
    """Label space, labels, Fleiss' kappa, Krippendorff's alpha and percent agreement with their intervals."""
    return project_agreement_figures(project, n_boot=200)
