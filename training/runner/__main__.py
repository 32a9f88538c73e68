"""The training child process: ``python -m training.runner <job-id>`` (what a GPU worker runs, alone or under
``accelerate launch``), or ``python -m training.runner --spec spec.json --data DIR --out DIR`` (the same run with no
database: progress goes to files; the GPU benchmark uses it).

Exit status 0 when the job ended as succeeded or cancelled, 1 when it failed (the error is on the job, the traceback
in the log). The worker that started it treats any other end (a signal, a crash) as a failure too.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.runner", description=__doc__.splitlines()[0])
    parser.add_argument("job_id", nargs="?", type=int, help="the TrainingJob to run (it must be claimed: running)")
    parser.add_argument("--spec", type=Path, help="standalone: a JSON file of training.jobs.spec.JobSpec settings")
    parser.add_argument("--data", type=Path, help="standalone: an HF datasets folder with a train (and test) split")
    parser.add_argument("--out", type=Path, help="standalone: the output folder")
    args = parser.parse_args(argv)
    if args.job_id is not None:
        # Django is set up before the job's modules import models; a standalone run never loads it
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        import django

        django.setup()
        from .run import run_job

        return run_job(args.job_id)
    if not (args.spec and args.data and args.out):
        parser.error("give a job id, or --spec, --data and --out")
    from .standalone import run_standalone

    return run_standalone(args.spec, args.data, args.out)


if __name__ == "__main__":
    sys.exit(main())
