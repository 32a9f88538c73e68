"""Curation recipes and dataset exports: every write, whichever door it came in by."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from annotation.models import Project

from . import exports as files
from .curation import STEPS, RecipeConfig, chosen_longer_share, curate
from .datasheet import datasheet_markdown
from .models import CurationRecipe, DatasetExport
from .selectors import agreement_for_datasheet, curation_candidates

FILE_FORMATS = ("jsonl", "parquet", "csv", "hf")


@transaction.atomic
def recipe_save(*, project: Project, name: str, config: dict, user) -> CurationRecipe:
    """Save a recipe; a changed config becomes the next version (exports keep pointing at theirs)."""
    try:
        clean = RecipeConfig.from_dict(config).as_dict()
    except (TypeError, ValueError) as exc:
        raise ValidationError({"config": str(exc)}) from None
    name = name.strip()
    if not name:
        raise ValidationError({"name": "A recipe needs a name."})
    Project.objects.select_for_update().filter(pk=project.pk).get()
    current = CurationRecipe.objects.filter(project=project, name=name).order_by("-version").first()
    if current is not None and current.config == clean:
        return current
    return CurationRecipe.objects.create(
        project=project, name=name, version=(current.version + 1) if current else 1, config=clean, created_by=user
    )


def recipe_preview(*, project: Project, config: dict, fmt: str = "dpo") -> dict:
    """What a recipe would produce now, without saving anything: the funnel, a margin histogram, the
    chosen-longer share and counts per preference source."""
    recipe = RecipeConfig.from_dict(config)
    rows, funnel = curate(curation_candidates(project), recipe, kto=fmt == "kto")
    edges = [i / 10 for i in range(11)]
    histogram = [0] * 10
    for row in rows:
        histogram[min(int(row.margin * 10), 9)] += 1
    sources: dict[str, int] = {}
    for row in rows:
        sources[row.source] = sources.get(row.source, 0) + 1
    return {
        "rows": len(rows),
        "funnel": funnel.steps,
        "margin_histogram": {"edges": edges, "counts": histogram},
        "chosen_longer_share": chosen_longer_share(rows),
        "sources": sources,
    }


def export_root() -> Path:
    return Path(settings.EXPORT_ROOT)


INLINE_EXPORT_MAX_PAIRS = 5_000  # larger projects export on a worker, with progress on the export page


def export_create(*, project: Project, recipe: CurationRecipe, fmt: str, user, conversational: bool = False,
                  test_fraction: float = 0.1, seed: int = 0, run_now: bool | None = None) -> DatasetExport:  # fmt: skip
    """Create an export of the recipe's rows. It is built in this process when ``run_now`` (the command) or, by
    default, when the project is small; otherwise it is queued for a worker after the transaction commits."""
    if recipe.project_id != project.pk:
        raise ValidationError({"recipe": "This recipe belongs to another project."})
    if fmt not in DatasetExport.Format.values:
        raise ValidationError({"format": f"Format must be one of: {', '.join(DatasetExport.Format.values)}."})
    if not 0.0 <= test_fraction < 1.0:
        raise ValidationError({"test_fraction": "The test fraction must be at least 0 and below 1."})
    export = DatasetExport.objects.create(
        project=project, recipe=recipe, format=fmt, conversational=conversational, test_fraction=test_fraction,
        seed=seed, created_by=user,
    )  # fmt: skip
    if run_now is None:
        run_now = project.pairs.count() <= INLINE_EXPORT_MAX_PAIRS
    if run_now:
        export_build(export)
        export.refresh_from_db()
    else:
        from .tasks import export_build_task

        export_build_task.delay_on_commit(export.pk)
    return export


def export_build(export: DatasetExport) -> None:
    """Curate, split, write every file and the datasheet, then mark the export ready. Safe to run twice: a
    finished export is left alone and a half-written folder is replaced."""
    if export.state == DatasetExport.State.SUCCEEDED:
        return
    DatasetExport.objects.filter(pk=export.pk).update(state=DatasetExport.State.RUNNING)
    folder = export_root() / export.project.slug / str(export.public_id)
    try:
        result = _build(export, folder)
    except Exception as exc:
        shutil.rmtree(folder, ignore_errors=True)
        DatasetExport.objects.filter(pk=export.pk).update(
            state=DatasetExport.State.FAILED, error=f"{type(exc).__name__}: {exc}"[:2000], finished_at=timezone.now()
        )
        raise
    DatasetExport.objects.filter(pk=export.pk).update(
        state=DatasetExport.State.SUCCEEDED, stage="", finished_at=timezone.now(), **result
    )


def _stage(export: DatasetExport, text: str) -> None:
    DatasetExport.objects.filter(pk=export.pk).update(stage=text[:100])


def _build(export: DatasetExport, folder: Path) -> dict:
    config = RecipeConfig.from_dict(export.recipe.config)
    kto = export.format == DatasetExport.Format.KTO
    _stage(export, "reading pairs, labels and verdicts")
    candidates = curation_candidates(export.project)
    _stage(export, f"curating {len(candidates):,} pairs")
    rows, funnel = curate(candidates, config, kto=kto)
    del candidates
    train, test = files.split_by_prompt(rows, test_fraction=export.test_fraction, seed=export.seed)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    root = export_root()
    written: dict[str, dict] = {}
    split_parquet: dict[str, Path] = {}
    digest = hashlib.sha256()
    for split, split_rows in (("train", train), ("test", test)):
        if not split_rows and split == "test":
            continue

        def items(split_rows=split_rows):
            return files.records(split_rows, export.format, conversational=export.conversational)

        _stage(export, f"writing {split} ({len(split_rows):,} rows)")
        jsonl = folder / f"{split}.jsonl"
        files.write_jsonl(jsonl, items())
        digest.update(jsonl.read_bytes())
        parquet = folder / f"{split}.parquet"
        files.write_parquet(parquet, items())
        split_parquet[split] = parquet
        written[f"{split}.jsonl"] = files.file_entry(jsonl, root)
        written[f"{split}.parquet"] = files.file_entry(parquet, root)
        if not export.conversational:
            csv_path = folder / f"{split}.csv"
            files.write_csv(csv_path, items())
            written[f"{split}.csv"] = files.file_entry(csv_path, root)
    content_hash = digest.hexdigest()
    _stage(export, "writing the datasets folder and the datasheet")
    files.write_hf_folder(folder / "hf", split_parquet, content_hash)
    written["hf"] = {"path": str((folder / "hf").relative_to(root)), "bytes": _folder_bytes(folder / "hf")}
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
            "train_rows": len(train),
            "test_rows": len(test),
        },  # fmt: skip
        "content_hash": content_hash,
        "funnel": funnel.steps,
        "steps": list(STEPS),
        "sources": _count(r.source for r in rows),
        "margin": _margin_summary([r.margin for r in rows]),
        "chosen_longer_share": chosen_longer_share(rows),
        "human_agreement": agreement_for_datasheet(export.project),
        "created_by": export.created_by.username if export.created_by else None,
        "created_at": export.created_at.isoformat(),
    }
    (folder / "datasheet.json").write_text(json.dumps(sheet, indent=2, sort_keys=True))
    markdown = datasheet_markdown(sheet)
    (folder / "datasheet.md").write_text(markdown)
    written["datasheet.md"] = files.file_entry(folder / "datasheet.md", root)
    written["datasheet.json"] = files.file_entry(folder / "datasheet.json", root)
    return {"content_hash": content_hash, "rows_train": len(train), "rows_test": len(test), "funnel": funnel.steps,
            "files": written, "datasheet": sheet, "datasheet_md": markdown}  # fmt: skip


def _folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _count(values) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


def _margin_summary(margins: list[float]) -> dict:
    if not margins:
        return {"n": 0}
    ordered = sorted(margins)
    return {"n": len(ordered), "min": ordered[0], "median": ordered[len(ordered) // 2], "max": ordered[-1],
            "mean": sum(ordered) / len(ordered)}  # fmt: skip
