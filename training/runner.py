"""The training child process: ``python -m training.runner <job-id>`` (what a GPU worker runs, alone or under
``accelerate launch``), or ``python -m training.runner --spec spec.json --data DIR --out DIR`` (the same run with no
database: progress goes to files; the GPU benchmark uses it).

Exit status 0 when the job ended as succeeded or cancelled, 1 when it failed (the error is on the job, the traceback
in the log). The worker that started it treats any other end (a signal, a crash) as a failure too.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import traceback
from pathlib import Path


def explain(exc: BaseException, spec=None) -> str:
    """A one-paragraph error for the job page."""
    text = f"{type(exc).__name__}: {exc}".strip()
    if type(exc).__name__ == "OutOfMemoryError" or "out of memory" in text.lower():
        hint = ""
        if spec is not None:
            hint = (f" (max_length {spec.max_length}, micro-batch {spec.micro_batch_size or 'auto'}): lower "
                    "micro_batch_size or max_length, or set gradient_checkpointing to on")  # fmt: skip
        return f"Out of GPU memory{hint}. {text.splitlines()[0][:500]}"
    if type(exc).__name__ == "ModelLoadError":
        return str(exc)[:4000]
    return text[:4000]


def _zip(folder: Path) -> Path:
    return Path(shutil.make_archive(str(folder), "zip", root_dir=folder))


def run_job(job_id: int) -> int:
    import django

    django.setup()
    from django.conf import settings
    from django.urls import reverse

    from .checkpoints import resolve_base_model
    from .jobs import job_dir, job_fail, job_finish
    from .models import TrainingJob
    from .services import export_root
    from .sinks import JobSink, is_main_process
    from .spec import JobSpec

    job = TrainingJob.objects.select_related("export", "export__recipe", "project").get(pk=job_id)
    if job.state != TrainingJob.State.RUNNING:
        print(f"job {job_id} is {job.state}, not running: nothing to do", file=sys.stderr)
        return 0
    spec = JobSpec.from_dict(job.spec)
    sink = JobSink(job.pk)
    export = job.export
    out_dir = job_dir(job)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        sink.progress(0, 0, "resolving the base model")
        from .trl_run import ModelLoadError, train

        try:
            model_path = resolve_base_model(spec.base_model, Path(settings.MODEL_CACHE))
        except Exception as exc:
            raise ModelLoadError(spec.base_model, exc) from exc

        context = {
            "name": job.name, "export": str(export.public_id), "project": job.project.slug,
            "recipe": f"{export.recipe.name} v{export.recipe.version}", "format": export.format,
            "content_hash": export.content_hash, "rows_train": export.rows_train, "rows_test": export.rows_test,
            "datasheet_url": reverse("training:export_detail", args=[job.project.slug, export.public_id]),
        }  # fmt: skip
        result = train(spec, export_root() / export.files["hf"]["path"], model_path, out_dir, sink, context=context)
    except Exception as exc:  # any failure ends the job with its message
        traceback.print_exc()
        if is_main_process():
            job_fail(job.pk, explain(exc, spec))
        return 1
    if not is_main_process():
        return 0
    archive = _zip(result["weights_dir"])
    root = Path(settings.TRAINING_ROOT)
    artifacts = {
        archive.name: {"path": str(archive.relative_to(root)), "bytes": archive.stat().st_size},
        "README.md": {"path": str((result["weights_dir"] / "README.md").relative_to(root)),
                      "bytes": (result["weights_dir"] / "README.md").stat().st_size},
    }  # fmt: skip
    job_finish(job.pk, result["state"], summary=result["summary"], evaluation=result["evaluation"],
               model_card=result["model_card"], artifacts=artifacts, hardware=result["hardware"])  # fmt: skip
    return 0


def run_standalone(spec_path: Path, data_dir: Path, out_dir: Path) -> int:
    from .checkpoints import resolve_base_model
    from .sinks import FileSink
    from .spec import JobSpec
    from .trl_run import train

    spec = JobSpec.from_dict(json.loads(spec_path.read_text()))
    sink = FileSink(out_dir)
    model_path = resolve_base_model(spec.base_model, out_dir / "model-cache")
    result = train(spec, data_dir, model_path, out_dir, sink, context={"export": str(data_dir)})
    summary = {k: result[k] for k in ("state", "summary", "hardware", "evaluation", "versions")}
    (out_dir / "result.json").write_text(json.dumps(summary, indent=2, default=str))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.runner", description=__doc__.splitlines()[0])
    parser.add_argument("job_id", nargs="?", type=int, help="the TrainingJob to run (it must be claimed: running)")
    parser.add_argument("--spec", type=Path, help="standalone: a JSON file of training.spec.JobSpec settings")
    parser.add_argument("--data", type=Path, help="standalone: an HF datasets folder with a train (and test) split")
    parser.add_argument("--out", type=Path, help="standalone: the output folder")
    args = parser.parse_args(argv)
    if args.job_id is not None:
        return run_job(args.job_id)
    if not (args.spec and args.data and args.out):
        parser.error("give a job id, or --spec, --data and --out")
    return run_standalone(args.spec, args.data, args.out)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.exit(main())
