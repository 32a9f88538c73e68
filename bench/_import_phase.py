"""Phase 1: generate N pairs and import them through the real service (and check atomicity)."""

import random
import shutil
import time
from pathlib import Path

from _env import ATOMIC_SLUG, SLUG

# --------------------------------------------------------------------------------------------------------------
# Phase 1: import

WORDS = (
    "the a of to and in is it that for on with as was be by this are or from at an which have not can will one all "
    "would there their what so up out if about who get them make when like time just him know take people into year "
    "your good some could see other than then now look only come its over think also back after use two how our work "
    "first well way even new want because any these give day most us model answer question explain reason function "
    "value list error result python code data step example number string return class method user server request "
    "response memory table index query order test file line version change simple better clear short long "
    "correct wrong because therefore however usually instead otherwise compute estimate compare describe summarize"
).split()
MODELS = ("model-small", "model-base", "model-large", "model-chat", "model-instruct", "model-rlhf")


def generate_jsonl(path: Path, n: int, seed: int = 2) -> int:
    """N pairs-format records with distinct prompts; returns the file size in bytes."""
    import orjson

    rng = random.Random(seed)
    choices = rng.choices
    randint = rng.randint
    with open(path, "wb", buffering=1 << 20) as out:
        for i in range(n):
            a, b = rng.sample(MODELS, 2)
            record = {
                "id": f"q{i}",
                "prompt": f"Q{i}: " + " ".join(choices(WORDS, k=randint(6, 12))) + "?",
                "response_a": " ".join(choices(WORDS, k=randint(12, 24))) + ".",
                "response_b": " ".join(choices(WORDS, k=randint(12, 24))) + ".",
                "model_a": a,
                "model_b": b,
            }
            out.write(orjson.dumps(record) + b"\n")
    return path.stat().st_size


def phase_import(args, workdir: Path) -> dict:
    from django.contrib.auth import get_user_model
    from django.db import connection

    from annotation.imports.importer import ImportRejected, pairs_import
    from annotation.models import Pair, Project
    from annotation.services.projects import project_create

    result: dict = {}
    if Project.objects.filter(slug__in=[SLUG, ATOMIC_SLUG]).exists():
        raise SystemExit(f"project {SLUG!r} already exists in --db {args.db}: use --fresh, or --skip-import")
    lead, _ = get_user_model().objects.get_or_create(username="bench-lead")
    project = project_create(name="Bench", slug=SLUG, created_by=lead, overlap_k=3)

    path = workdir / "pairs.jsonl"
    started = time.perf_counter()
    size = generate_jsonl(path, args.pairs)
    result["file"] = {"pairs": args.pairs, "bytes": size, "generate_s": round(time.perf_counter() - started, 2)}
    print(f"  generated {args.pairs:,} pairs, {size / 1e6:.0f} MB, in {result['file']['generate_s']} s", flush=True)

    started = time.perf_counter()
    batch = pairs_import(project=project, path=path, user=lead)
    elapsed = time.perf_counter() - started
    result["first"] = {
        "seconds": round(elapsed, 2),
        "rows_read": batch.rows_read,
        "pairs_created": batch.pairs_created,
        "duplicates_skipped": batch.duplicates_skipped,
        "pairs_per_s": round(batch.pairs_created / elapsed),
        "rows_per_s": round(batch.rows_read / elapsed),
    }
    print(
        f"  import: {batch.pairs_created:,} pairs created in {elapsed:.1f} s"
        f" = {batch.pairs_created / elapsed:,.0f} pairs/s",
        flush=True,
    )

    started = time.perf_counter()
    again = pairs_import(project=project, path=path, user=lead)
    elapsed = time.perf_counter() - started
    result["reimport"] = {
        "seconds": round(elapsed, 2),
        "rows_read": again.rows_read,
        "pairs_created": again.pairs_created,
        "duplicates_skipped": again.duplicates_skipped,
        "rows_per_s": round(again.rows_read / elapsed),
    }
    print(
        f"  re-import: {again.pairs_created:,} created, {again.duplicates_skipped:,} duplicates skipped, "
        f"in {elapsed:.1f} s",
        flush=True,
    )

    if not args.skip_atomic_check:
        # The same file plus one bad last line: everything before it has been written when the error is found.
        bad = workdir / "pairs-bad-last-line.jsonl"
        shutil.copyfile(path, bad)
        with open(bad, "ab") as out:
            out.write(b'{"prompt": "last", "response_a": 1, "response_b": "x"}\n')
        other = project_create(name="Bench atomic", slug=ATOMIC_SLUG, created_by=lead, overlap_k=3)
        started = time.perf_counter()
        rejected, message = False, ""
        try:
            pairs_import(project=other, path=bad, user=lead)
        except ImportRejected as exc:
            rejected, message = True, str(exc).splitlines()[-1]
        elapsed = time.perf_counter() - started
        written = Pair.objects.filter(project=other).count()
        result["atomic"] = {
            "seconds": round(elapsed, 2),
            "rejected": rejected,
            "pairs_written": written,
            "error": message,
        }
        print(
            f"  bad last line: rejected={rejected}, pairs written={written}, in {elapsed:.1f} s ({message})", flush=True
        )
        bad.unlink()

    # autovacuum may be off (it is on this machine); production would analyze the new rows within a minute.
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE annotation_pair")
    result["analyze_s"] = round(time.perf_counter() - started, 2)
    path.unlink()
    return result
