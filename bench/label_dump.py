#!/usr/bin/env python
"""Raw label dump benchmark (issue 21): throughput and memory of ``annotation.label_dump`` at 1,000,000 labels.

    .venv/bin/python bench/label_dump.py                        # 1,000,000 labels, 300 annotators, 100,000 pairs
    .venv/bin/python bench/label_dump.py --labels 20000 --pairs 2000 --annotators 30   # smoke run
    .venv/bin/python bench/label_dump.py --in-transaction       # also time the dump inside a transaction

It uses its own PostgreSQL database (``arbiter_bench`` on 127.0.0.1:5432, trust auth; ``--fresh`` drops and
re-creates it, ``--drop`` drops it at the end) and builds one throwaway project with set-based SQL (``INSERT ...
SELECT generate_series``: faster than COPY or bulk_create, nothing crosses into Python): ``--annotators`` users,
``--pairs`` pairs and ``--labels`` labels, each (pair, annotator) at most once, in the mix a live project has:
80% regular, 6% calibration, 4% mirrored repeats, 2% practice, 8% imported (external annotators, no assignment);
half with two criteria, a tenth with a rationale, strength on A/B answers. A project built with the same sizes is
reused; another size is deleted and built again.

Then each format (JSONL, Parquet) is dumped in a fresh child process (so ``getrusage``'s peak RSS is that dump's
alone) with ``pseudonymize=True``, the chunks written to a temporary file: rows/s, MB written, time to the first
chunk, peak RSS (getrusage, and sampled every 10 ms during the dump against the RSS before it), and where the CPU
went (this process, this database's PostgreSQL backends, other work on the machine). The row count of each file is
checked. Prints JSON and writes it to bench/out/label-dump-<time>.json.

By default the dump runs as a view would run it, outside a transaction: PostgreSQL then runs the server-side cursor
WITH HOLD and materialises the result before the first fetch. ``--in-transaction`` adds runs inside
``transaction.atomic()``, where rows stream as fetched.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time

from _env import OUT_DIR, ROOT, database_prepare, django_setup, machine_info

SLUG = "label-dump-bench"
USER_PREFIX = "ldb-"
FORMATS = ("jsonl", "parquet")

# --------------------------------------------------------------------------------------------------------------
# Data: every statement is one INSERT ... SELECT; randomness from PostgreSQL's random() after setseed().

BUILD = [
    """INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email, is_staff, is_active,
                              date_joined)
       SELECT '!', false, format('ldb-%%s', lpad(r::text, 3, '0')), '', '', '', false, true, now()
       FROM generate_series(0, %(annotators)s - 1) r""",
    """CREATE TEMP TABLE ldb_user AS
       SELECT r, u.id AS user_id FROM generate_series(0, %(annotators)s - 1) r
       JOIN auth_user u ON u.username = format('ldb-%%s', lpad(r::text, 3, '0'))""",
    """INSERT INTO annotation_membership (project_id, user_id, role, paused_at, paused_reason, created_at)
       SELECT %(project)s, user_id, 'annotator', NULL, '', now() FROM ldb_user""",
    """INSERT INTO annotation_pair (project_id, external_id, prompt, prompt_is_chat, response_a, response_b, model_a,
                                   model_b, metadata, source_preference, gold, gold_explanation, content_hash,
                                   shuffle_key, open_slots, label_count, created_at)
       SELECT %(project)s, 'ldb-' || g, jsonb_build_array(jsonb_build_object('role', 'user', 'content', 'Q ' || g)),
              false, 'Answer A ' || g, 'Answer B ' || g, 'model-x', 'model-y', '{}', '',
              CASE WHEN g %% 50 = 0 THEN 'A' ELSE '' END, '', md5('ldb' || g), g, 0, 0, now()
       FROM generate_series(0, %(pairs)s - 1) g""",
    """CREATE TEMP TABLE ldb_pair AS
       SELECT id, substr(external_id, 5)::int AS g FROM annotation_pair WHERE project_id = %(project)s""",
    # Label i: pair i mod P, annotator (7 (i mod P) + 31 (i div P)) mod A: distinct annotators on a pair while
    # labels <= pairs x annotators (31 and A coprime, checked in main). Assignment ids taken from the sequence.
    """CREATE TEMP TABLE ldb_label AS
       SELECT i, p.id AS pair_id, q.user_id, q.r, k.kind,
              CASE WHEN k.kind <> 'external' THEN nextval(%(sequence)s) END AS aid,
              random() < 0.5 AS left_is_a, random() AS u,
              now() - interval '60 days' * random() AS served_at, (1000 + 60000 * random())::int AS ms
       FROM generate_series(0, %(labels)s - 1) i
       JOIN ldb_pair p ON p.g = i %% %(pairs)s
       JOIN ldb_user q ON q.r = ((i %% %(pairs)s) * 7 + (i / %(pairs)s) * 31) %% %(annotators)s
       CROSS JOIN LATERAL (
           SELECT CASE WHEN v < 0.80 THEN 'regular' WHEN v < 0.86 THEN 'gold' WHEN v < 0.90 THEN 'repeat'
                       WHEN v < 0.92 THEN 'practice' ELSE 'external' END AS kind
           FROM (SELECT random() AS v WHERE i IS NOT NULL) s) k""",
    """INSERT INTO annotation_assignment (id, public_id, project_id, pair_id, annotator_id, kind, state, left_is_a,
                                         guideline_version_id, served_at, expires_at, finished_at)
       SELECT aid, gen_random_uuid(), %(project)s, pair_id, user_id, kind, 'done', left_is_a, %(guidelines)s,
              served_at, served_at + interval '15 minutes', served_at + ms * interval '1 millisecond'
       FROM ldb_label WHERE kind <> 'external' ORDER BY aid""",
    """INSERT INTO annotation_label (project_id, pair_id, assignment_id, annotator_id, external_annotator, source,
                                    choice, left_is_a, strength, rationale, criteria, time_on_item_ms,
                                    guideline_version_id, created_at)
       SELECT %(project)s, pair_id, aid, CASE WHEN ext THEN NULL ELSE user_id END,
              CASE WHEN ext THEN 'ext-' || r ELSE '' END, CASE WHEN ext THEN 'external' ELSE 'human' END,
              (ARRAY['A', 'B', 'tie', 'both_bad'])[1 + floor(u * 4)::int], CASE WHEN NOT ext THEN left_is_a END,
              CASE WHEN NOT ext AND u < 0.5 THEN 1 + i %% 3 END,
              CASE WHEN i %% 10 = 0 THEN 'B drifts off topic; ' || md5(i::text) ELSE '' END,
              CASE WHEN i %% 2 = 0 THEN jsonb_build_object('helpfulness', CASE WHEN u < 0.6 THEN 'A' ELSE 'B' END,
                                                          'harmlessness', CASE WHEN u < 0.3 THEN 'B' ELSE 'tie' END)
                   ELSE '{}' END,
              CASE WHEN NOT ext THEN ms END, CASE WHEN NOT ext THEN %(guidelines)s END,
              served_at + ms * interval '1 millisecond'
       FROM (SELECT *, kind = 'external' AS ext FROM ldb_label) l ORDER BY i""",
]

TEARDOWN = [
    "DELETE FROM annotation_label WHERE project_id = %(project)s",
    "DELETE FROM annotation_assignment WHERE project_id = %(project)s",
    "DELETE FROM annotation_pair WHERE project_id = %(project)s",
    "DELETE FROM annotation_membership WHERE project_id = %(project)s",
    "DELETE FROM annotation_guidelineversion WHERE project_id = %(project)s",
    "DELETE FROM annotation_project WHERE id = %(project)s",
    "DELETE FROM auth_user WHERE username LIKE 'ldb-%%'",
]


def project_build(args) -> dict:
    """The benchmark project: reused when a previous run built it with the same sizes, else (re)built."""
    from django.db import connection, transaction

    from annotation.models import GuidelineVersion, Label, Project

    params = {"labels": args.labels, "pairs": args.pairs, "annotators": args.annotators, "seed": args.seed}
    description = json.dumps(params, sort_keys=True)
    project = Project.objects.filter(slug=SLUG).first()
    if project is not None and project.description == description:
        return {"built": False, "seconds": 0.0, "project": project}
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        if project is not None:  # another size: set-based deletes (the ORM would collect a million rows first)
            for statement in TEARDOWN:
                cursor.execute(statement, {"project": project.pk})
        project = Project.objects.create(
            name="Label dump benchmark", slug=SLUG, description=description,
            strength_scale=["slightly", "clearly", "much"], criteria=["helpfulness", "harmlessness"],
        )  # fmt: skip
        guidelines = GuidelineVersion.objects.create(project=project, version=1, body="Pick the more helpful answer.")
        cursor.execute("SELECT pg_get_serial_sequence('annotation_assignment', 'id'), setseed(%s)", [args.seed])
        sequence = cursor.fetchone()[0]
        for statement in BUILD:
            cursor.execute(statement, {**params, "project": project.pk, "guidelines": guidelines.pk,
                                       "sequence": sequence})  # fmt: skip
        cursor.execute("DROP TABLE ldb_user, ldb_pair, ldb_label")
    with connection.cursor() as cursor:  # autovacuum is off on the development server
        for table in ("auth_user", "annotation_pair", "annotation_assignment", "annotation_label"):
            cursor.execute(f"VACUUM ANALYZE {table}")
    seconds = time.perf_counter() - started
    print(f"built {Label.objects.filter(project=project).count():,} labels in {seconds:.1f} s", flush=True)
    return {"built": True, "seconds": round(seconds, 1), "project": project}


def data_summary(project) -> dict:
    from django.db.models import Count

    from annotation.models import Label, Pair

    by_kind = Label.objects.filter(project=project).values_list("assignment__kind").annotate(n=Count("pk")).order_by()
    return {
        "labels": Label.objects.filter(project=project).count(),
        "labels_by_assignment_kind": {kind or "none (imported)": n for kind, n in by_kind},
        "pairs": Pair.objects.filter(project=project).count(),
        "human_annotators": Label.objects.filter(project=project, annotator__isnull=False)
        .values("annotator_id")
        .distinct()
        .count(),
    }


# --------------------------------------------------------------------------------------------------------------
# One dump, in a child process of its own


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(args) -> dict:
    """Dump the project once (in this process) and describe it; run by the parent as a child with --measure."""
    from contextlib import nullcontext

    import pyarrow.parquet as pq
    from _measure import cpu_report, cpu_snapshot
    from django.db import transaction

    from annotation.label_dump import label_dump
    from annotation.models import Label, Project

    project = Project.objects.get(slug=SLUG)
    expected = Label.objects.filter(project=project).count()
    peak = [0]
    done = threading.Event()

    def sample() -> None:  # resident memory every 10 ms, for the dump's own peak
        while not done.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.01)

    rss_before = _rss()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    with tempfile.TemporaryDirectory(prefix="arbiter-label-dump-") as folder:
        path = os.path.join(folder, f"labels.{args.measure}")
        chunks, written, first_chunk = 0, 0, None
        cpu_before = cpu_snapshot({os.getpid()})
        started = time.perf_counter()
        with open(path, "wb") as out, transaction.atomic() if args.in_transaction else nullcontext():
            for chunk in label_dump(project, fmt=args.measure, pseudonymize=True, batch_size=args.batch_size):
                if first_chunk is None:
                    first_chunk = time.perf_counter() - started
                out.write(chunk)
                chunks += 1
                written += len(chunk)
        seconds = time.perf_counter() - started
        cpu = cpu_report(cpu_before, cpu_snapshot({os.getpid()}), expected, "bench")
        done.set()
        sampler.join()
        if args.measure == "jsonl":
            with open(path, "rb") as f:
                rows = sum(1 for _ in f)
        else:
            rows = pq.ParquetFile(path).metadata.num_rows
    if rows != expected:
        raise SystemExit(f"{args.measure}: {rows} rows written, {expected} labels in the project")
    return {
        "format": args.measure,
        "in_transaction": args.in_transaction,
        "batch_size": args.batch_size,
        "rows": rows,
        "seconds": round(seconds, 2),
        "rows_per_s": round(rows / seconds),
        "first_chunk_s": round(first_chunk or 0.0, 2),
        "mb_written": round(written / 1e6, 1),
        "mb_per_s": round(written / 1e6 / seconds, 1),
        "chunks": chunks,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "rss_before_dump_mib": round(rss_before / 2**20),
        "peak_rss_during_dump_mib": round(max(peak[0], rss_before) / 2**20),
        "cpu": cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labels", type=int, default=1_000_000)
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--annotators", type=int, default=300)
    parser.add_argument("--seed", type=float, default=0.21, help="PostgreSQL setseed() for the data")
    parser.add_argument("--batch-size", type=int, default=None, help="rows per chunk (default: label_dump's)")
    parser.add_argument("--formats", default=",".join(FORMATS))
    parser.add_argument("--in-transaction", action="store_true", help="also time each format inside a transaction")
    parser.add_argument("--db", default="arbiter_bench")
    parser.add_argument("--fresh", action="store_true", help="drop and re-create the benchmark database")
    parser.add_argument("--drop", action="store_true", help="drop the benchmark database at the end")
    parser.add_argument("--measure", choices=FORMATS, help=argparse.SUPPRESS)  # the child's part
    args = parser.parse_args()
    if args.labels > args.pairs * args.annotators or args.annotators % 31 == 0:
        raise SystemExit("need labels <= pairs x annotators, and annotators not a multiple of 31")

    if args.measure:
        django_setup(args.db)
        if args.batch_size is None:
            from annotation.label_dump import BATCH_ROWS

            args.batch_size = BATCH_ROWS
        print(json.dumps(measure(args)))
        return

    created = database_prepare(args.db, args.fresh)
    django_setup(args.db)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    run_id = time.strftime("%Y%m%d-%H%M%S")
    result: dict = {"run": run_id, "argv": sys.argv[1:], "database_created": created, "machine": machine_info()}
    build = project_build(args)
    project = build.pop("project")
    result["build"] = build
    result["data"] = data_summary(project)
    print(json.dumps(result["data"]), flush=True)
    result["dumps"] = []
    for in_transaction in [False, True] if args.in_transaction else [False]:
        for fmt in args.formats.split(","):
            argv = [sys.executable, __file__, "--measure", fmt, "--db", args.db]
            argv += ["--in-transaction"] if in_transaction else []
            argv += ["--batch-size", str(args.batch_size)] if args.batch_size else []
            child = subprocess.run(argv, capture_output=True, text=True, check=False)
            if child.returncode != 0:
                raise SystemExit(f"{fmt}: the dump failed:\n{child.stderr[-3000:]}")
            dump = json.loads(child.stdout.strip().splitlines()[-1])
            result["dumps"].append(dump)
            print(
                f"{fmt:<8} {'in a transaction' if in_transaction else 'autocommit':<16} {dump['rows']:,} rows in "
                f"{dump['seconds']} s = {dump['rows_per_s']:,} rows/s, {dump['mb_written']} MB, first chunk "
                f"{dump['first_chunk_s']} s, peak RSS {dump['peak_rss_mib']} MiB (before the dump "
                f"{dump['rss_before_dump_mib']} MiB), PostgreSQL {dump['cpu']['postgres_cores']} cores, "
                f"other work {dump['cpu']['other_work_cores']} cores",
                flush=True,
            )
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    out_path = OUT_DIR / f"label-dump-{run_id}.json"
    out_path.write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps(result, indent=2, default=str))
    print(f"\nresults: {out_path.relative_to(ROOT)}")
    if args.drop:
        from django.db import connections

        connections.close_all()
        import psycopg
        from _env import PG_SERVER

        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{args.db}" WITH (FORCE)')
        print(f"dropped {args.db}")


if __name__ == "__main__":
    main()
