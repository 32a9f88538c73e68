#!/usr/bin/env python
"""Assignment and import benchmark (issue 2). Run by hand, never as a test:

    .venv/bin/pip install -r bench/requirements.txt      # gunicorn, for the HTTP phase only
    .venv/bin/python bench/assignment.py --fresh          # 1,000,000 pairs, 60 s per pass
    .venv/bin/python bench/assignment.py --fresh --pairs 20000 --seconds 10   # smoke run

It uses its own PostgreSQL database (``arbiter_bench`` on 127.0.0.1:5432, trust auth; ``--fresh`` drops and
re-creates it) and touches no other database. Only 127.0.0.1 is ever contacted.

Phases
1. import: generate a JSONL of N distinct pairs, import it through ``pairs_import`` into a fresh project (K=3),
   re-import the same file (must create 0), and import a copy with one bad last line into another project (must
   be rejected with 0 pairs written: the import is all or nothing).
2. service: ``--annotators`` simulated annotators, spread over ``--procs`` processes with one thread and one
   database connection per annotator, loop ``assignment_next`` + ``label_submit`` for ``--seconds``, timing
   every call.
3. HTTP: the real server (gunicorn, DEBUG off) and a small asyncio HTTP/1.1 client, with one keep-alive connection
   and one token per annotator, through ``POST .../assignments/next/`` and ``POST .../assignments/<id>/label/``;
   server-side times come from gunicorn's access log (%(D)s, microseconds), client-side times from the client.

Each of phases 2 and 3 runs twice: saturated (no think time: the throughput ceiling; by Little's law latency is then
annotators / throughput) and paced at ``--rate`` labels/s in total (latency at that load). Every pass uses its own
annotators, and after each one SQL checks that nothing was over-assigned and no label was lost.

Writes a summary to stdout and the full results to bench/out/assignment-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "bench" / "out"
PG_SERVER = "postgres://postgres@127.0.0.1:5432"
SLUG = "bench"
ATOMIC_SLUG = "bench-atomic"
DB_NAME_RE = re.compile(r"^arbiter_bench[a-z0-9_]*$")

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# --------------------------------------------------------------------------------------------------------------
# Environment and database


def bench_env(db: str) -> dict[str, str]:
    """Settings for every process of the benchmark (this one, the annotator processes, the server)."""
    return {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": f"{PG_SERVER}/{db}",
        "DEBUG": "0",  # DEBUG on would record every query
        "ALLOWED_HOSTS": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
        "SECRET_KEY": "bench-only-" + "x" * 50,
    }


def database_prepare(db: str, fresh: bool) -> bool:
    """Create the benchmark database (dropping it first with fresh). Returns True when it was created."""
    import psycopg

    if not DB_NAME_RE.match(db):
        raise SystemExit(f"--db {db!r}: the benchmark only uses databases named arbiter_bench*")
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db]).fetchone() is not None
        if exists and fresh:
            conn.execute(f'DROP DATABASE "{db}" WITH (FORCE)')
            exists = False
        if not exists:
            conn.execute(f'CREATE DATABASE "{db}"')
            return True
    return False


DB_NAME = "arbiter_bench"


def django_setup(db: str) -> None:
    global DB_NAME
    DB_NAME = db
    os.environ.update(bench_env(db))
    os.chdir(ROOT)
    import django

    django.setup()


def machine_info() -> dict:
    from django.db import connection

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        pg_version = cursor.fetchone()[0]
        settings = {}
        for name in ("shared_buffers", "work_mem", "max_connections", "synchronous_commit", "autovacuum"):
            cursor.execute(f"SHOW {name}")
            settings[name] = cursor.fetchone()[0]
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "mem_total_gib": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "postgresql": pg_version,
        "postgresql_settings": settings,
    }


# --------------------------------------------------------------------------------------------------------------
# CPU accounting: where the two cores went during a pass (this machine is shared with other work)

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _proc_table() -> dict[int, tuple[str, int, float]]:
    """pid -> (command, parent pid, CPU seconds used so far) for every process; the command of a PostgreSQL
    process is its title ("postgres: postgres arbiter_bench 127.0.0.1(5432) idle", "postgres: walwriter")."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        if comm == "postgres":
            try:
                comm = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
        table[int(entry)] = (comm, int(fields[1]), (int(fields[11]) + int(fields[12])) / CLK_TCK)
    return table


PG_SHARED = ("walwriter", "checkpointer", "background writer")


def cpu_snapshot(bench_pids: set[int] | None = None, server_pid: int | None = None) -> dict:
    """Busy CPU seconds of the whole machine, of PostgreSQL, of the benchmark's own processes and of the server."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    busy = (sum(values[:8]) - values[3] - values[4]) / CLK_TCK  # everything but idle and iowait (guest is in user)
    table = _proc_table()
    # This database's backends and the WAL writer, checkpointer and background writer; not other databases' backends
    # (other work on this machine uses the same server). Per pid: a backend that exits in the window is not ours.
    postgres = {
        pid: cpu
        for pid, (comm, _, cpu) in table.items()
        if comm.startswith("postgres:") and (f" {DB_NAME} " in comm or any(name in comm for name in PG_SHARED))
    }
    bench = sum(table[pid][2] for pid in (bench_pids or ()) if pid in table)
    server = sum(cpu for pid, (_, ppid, cpu) in table.items() if server_pid and server_pid in (pid, ppid))
    return {
        "t": time.monotonic(),
        "busy": busy,
        "postgres": postgres,
        "bench": bench,
        "server": server,
        "self": time.process_time(),
    }


def cpu_report(before: dict, after: dict, labels: int, python_key: str) -> dict:
    """Cores used on average during the window, by whom, and CPU milliseconds per label."""
    wall = after["t"] - before["t"]
    used = {k: after[k] - before[k] for k in ("busy", "bench", "server", "self")}
    used["postgres"] = sum(cpu - before["postgres"].get(pid, 0.0) for pid, cpu in after["postgres"].items())
    python = used[python_key]
    out = {
        "window_s": round(wall, 2),
        "machine_busy_cores": round(used["busy"] / wall, 2),
        "postgres_cores": round(used["postgres"] / wall, 2),
        "django_cores": round(python / wall, 2),
        "loadavg_after": os.getloadavg()[0],
    }
    if python_key == "server":
        out["client_cores"] = round(used["self"] / wall, 2)
        ours = used["postgres"] + python + used["self"]
    else:
        ours = used["postgres"] + python
    out["other_work_cores"] = round(max(0.0, used["busy"] - ours) / wall, 2)
    if labels:
        out["postgres_ms_per_label"] = round(used["postgres"] / labels * 1000, 2)
        out["django_ms_per_label"] = round(python / labels * 1000, 2)
    return out


# --------------------------------------------------------------------------------------------------------------
# Statistics


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return None
    rank = max(1, min(len(sorted_values), int(-(-q * len(sorted_values) // 100))))
    return sorted_values[rank - 1]


def summarize(values: list[float]) -> dict:
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50": percentile(ordered, 50),
        "p95": percentile(ordered, 95),
        "p99": percentile(ordered, 99),
        "max": ordered[-1] if ordered else None,
        "mean": sum(ordered) / len(ordered) if ordered else None,
    }


def fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def latency_line(name: str, s: dict) -> str:
    return (
        f"    {name:<22} n={s['n']:>7}  p50={fmt_ms(s['p50']):>7}  p95={fmt_ms(s['p95']):>7}  "
        f"p99={fmt_ms(s['p99']):>7}  max={fmt_ms(s['max']):>7} ms"
    )


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

    from annotation.models import Pair, Project
    from annotation.services.imports import ImportRejected, pairs_import
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


# --------------------------------------------------------------------------------------------------------------
# Users, verification, EXPLAIN


def analyze() -> float:
    """ANALYZE the tables the engine reads, as autovacuum would (it is off on the development machine)."""
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cursor:
        for table in ("annotation_pair", "annotation_assignment", "annotation_label"):
            cursor.execute(f"ANALYZE {table}")
    return round(time.perf_counter() - started, 2)


def pass_users(project, prefix: str, n: int) -> list:
    """N annotators for one pass, members of the project, each with an API token."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from annotation.models import Membership

    user_model = get_user_model()
    users = []
    for i in range(n):
        user, _ = user_model.objects.get_or_create(username=f"{prefix}-{i:03d}")
        Membership.objects.get_or_create(project=project, user=user, defaults={"role": Membership.Role.ANNOTATOR})
        Token.objects.get_or_create(user=user)
        users.append(user)
    return users


def verify(project, user_ids: list[int]) -> dict:
    """Invariants over the whole project, and the labels of this pass's annotators."""
    from django.db import connection

    params = {"p": project.pk, "k": project.overlap_k, "users": user_ids}
    queries = {
        "pairs_over_k_labels": """SELECT count(*) FROM (SELECT pair_id FROM annotation_label WHERE project_id = %(p)s
                GROUP BY pair_id HAVING count(*) > %(k)s) x""",
        "pairs_over_k_live_assignments": """SELECT count(*) FROM (SELECT pair_id FROM annotation_assignment
                WHERE project_id = %(p)s AND state IN ('active', 'done') GROUP BY pair_id HAVING count(*) > %(k)s) x""",
        "pair_annotator_multiple_labels": """SELECT count(*) FROM (SELECT pair_id, annotator_id FROM annotation_label
                WHERE project_id = %(p)s AND annotator_id IS NOT NULL GROUP BY 1, 2 HAVING count(*) > 1) x""",
        "pair_annotator_multiple_assignments": """SELECT count(*) FROM (SELECT pair_id, annotator_id
                FROM annotation_assignment WHERE project_id = %(p)s GROUP BY 1, 2 HAVING count(*) > 1) x""",
        # open_slots must equal K - (done + live leases), label_count the done ones, on every pair served.
        "pairs_with_counter_drift": """SELECT count(*) FROM annotation_pair p JOIN (SELECT pair_id,
                count(*) FILTER (WHERE state IN ('active', 'done')) AS held,
                count(*) FILTER (WHERE state = 'done') AS done
                FROM annotation_assignment WHERE project_id = %(p)s GROUP BY pair_id) a ON a.pair_id = p.id
                WHERE p.open_slots <> %(k)s - a.held OR p.label_count <> a.done""",
        "labels_of_pass": """SELECT count(*) FROM annotation_label WHERE project_id = %(p)s
                AND annotator_id = ANY(%(users)s)""",
        "active_assignments_of_pass": """SELECT count(*) FROM annotation_assignment WHERE project_id = %(p)s
                AND state = 'active' AND annotator_id = ANY(%(users)s)""",
        "labels_total": "SELECT count(*) FROM annotation_label WHERE project_id = %(p)s",
    }
    out = {}
    with connection.cursor() as cursor:
        for name, sql in queries.items():
            cursor.execute(sql, params)
            out[name] = cursor.fetchone()[0]
    out["over_assignment"] = (
        out["pairs_over_k_labels"] + out["pairs_over_k_live_assignments"] + (out["pair_annotator_multiple_labels"])
    )
    return out


def explain_next(project, user) -> list[dict]:
    """EXPLAIN ANALYZE of every statement that one real ``assignment_next`` call runs, for this annotator and pool.

    The call runs inside a transaction that is rolled back, with its statements captured; each is then explained
    in a transaction of its own, also rolled back, with the same parameters (so each sees the pool as the call did).
    Follows the engine's code, whatever its queries are."""
    from django.db import connection, transaction

    from annotation.services.assignment import assignment_next

    captured: list[tuple[str, tuple]] = []

    def capture(execute, sql, params, many, context):
        captured.append((sql, params))
        return execute(sql, params, many, context)

    with transaction.atomic(), connection.execute_wrapper(capture):
        assignment_next(project=project, annotator=user)
        transaction.set_rollback(True)
    plans = []
    for sql, params in captured:
        if not sql.lstrip().upper().startswith(("SELECT", "UPDATE", "INSERT", "DELETE", "WITH")):
            continue
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            transaction.set_rollback(True)
        took = re.search(r"Execution Time: ([\d.]+) ms", plan)
        table = re.search(r'(?:FROM|UPDATE|INTO)\s+"?(\w+)', sql)
        plans.append(
            {
                "table": table.group(1) if table else "?",
                "statement": sql.split(None, 1)[0].upper(),
                "for_update": "FOR UPDATE" in sql,
                "ms": float(took.group(1)) if took else None,
                "sql": cursor.mogrify(sql, params) if hasattr(cursor, "mogrify") else sql,
                "plan": plan,
            }
        )
    return plans


def pool_state(project) -> dict:
    from django.db.models import Count

    from annotation.models import Pair

    rows = Pair.objects.filter(project=project).values("open_slots").annotate(n=Count("pk"))
    return {str(r["open_slots"]): r["n"] for r in rows}


# --------------------------------------------------------------------------------------------------------------
# Phase 2: service, in worker processes


def _service_worker(db, project_id, user_ids, seconds, period, ready, go, release, results):
    """One process: one thread (and one database connection) per annotator."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    django_setup(db)
    from django.contrib.auth import get_user_model
    from django.db import connection

    from annotation.models import Project
    from annotation.services.assignment import assignment_next
    from annotation.services.labels import Submission, label_submit

    users = {u.pk: u for u in get_user_model().objects.filter(pk__in=user_ids)}
    connection.close()
    start_event = threading.Event()
    warm = threading.Barrier(len(user_ids) + 1)
    finished = threading.Barrier(len(user_ids) + 1)
    per_thread: list[dict] = []
    deadline_box: list[float] = []

    def annotator(user):
        rec = {"next": [], "submit": [], "cycle": [], "labels": 0, "warmup_labels": 0, "empty": 0, "errors": {}}
        rec["queries_next"], rec["queries_submit"] = [], []
        rng = random.Random(user.pk)
        project = Project.objects.get(pk=project_id)
        statements = [0]

        def count_statements(execute, sql, params, many, context):
            statements[0] += 1
            return execute(sql, params, many, context)

        # On this thread's connection for the thread's whole life (the context manager is kept, or it would unwind).
        wrapping = connection.execute_wrapper(count_statements)
        wrapping.__enter__()

        def cycle(record: bool) -> bool:
            q0 = statements[0]
            t0 = time.perf_counter()
            assignment = assignment_next(project=project, annotator=user)
            t1 = time.perf_counter()
            q1 = statements[0]
            if assignment is None:
                rec["empty"] += 1
                return False
            _, created = label_submit(
                assignment=assignment, submission=Submission(choice=rng.choice(("left", "right")))
            )
            t2 = time.perf_counter()
            if record:
                rec["next"].append((t1 - t0) * 1000)
                rec["submit"].append((t2 - t1) * 1000)
                rec["cycle"].append((t2 - t0) * 1000)
                rec["queries_next"].append(q1 - q0)
                rec["queries_submit"].append(statements[0] - q1)
                rec["labels"] += created
            else:
                rec["warmup_labels"] += created
            return True

        try:
            cycle(record=False)  # opens the connection; not timed
        except Exception as exc:  # noqa: BLE001 - counted and reported
            rec["errors"][type(exc).__name__] = rec["errors"].get(type(exc).__name__, 0) + 1
        warm.wait()
        start_event.wait()
        deadline = deadline_box[0]
        next_start = time.monotonic() + (rng.random() * period if period else 0)
        while True:
            if period:
                delay = next_start - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                next_start = max(next_start + period, time.monotonic())
            if time.monotonic() >= deadline:
                break
            try:
                if not cycle(record=True):
                    break
            except Exception as exc:  # noqa: BLE001 - counted and reported
                name = type(exc).__name__
                rec["errors"][name] = rec["errors"].get(name, 0) + 1
                if len(rec["errors"]) == 1 and rec["errors"][name] == 1:
                    rec["first_error"] = repr(exc)[:500]
        per_thread.append(rec)
        finished.wait()
        release.wait()  # keep the connection (and its PostgreSQL backend's CPU count) until the parent has measured
        connection.close()

    threads = [threading.Thread(target=annotator, args=(users[uid],)) for uid in user_ids]
    for t in threads:
        t.start()
    warm.wait()
    ready.put(os.getpid())
    go.wait()
    deadline_box.append(time.monotonic() + seconds)
    start_event.set()
    finished.wait()
    ready.put(os.getpid())
    for t in threads:
        t.join()
    merged = {"next": [], "submit": [], "cycle": [], "labels": 0, "warmup_labels": 0, "empty": 0, "errors": {}}
    merged["queries_next"], merged["queries_submit"] = [], []
    for rec in per_thread:
        for key in ("next", "submit", "cycle", "queries_next", "queries_submit"):
            merged[key] += rec[key]
        for key in ("labels", "warmup_labels", "empty"):
            merged[key] += rec[key]
        for name, n in rec["errors"].items():
            merged["errors"][name] = merged["errors"].get(name, 0) + n
        if "first_error" in rec and "first_error" not in merged:
            merged["first_error"] = rec["first_error"]
    results.put(merged)


def phase_service(args, project, prefix: str, rate: float) -> dict:
    users = pass_users(project, prefix, args.annotators)
    analyze_s = analyze() if args.analyze else None
    procs = max(1, min(args.procs, len(users)))
    period = args.annotators / rate if rate else 0.0
    ctx = mp.get_context("spawn")
    ready, results, go, release = ctx.Queue(), ctx.Queue(), ctx.Event(), ctx.Event()
    groups = [[u.pk for u in users[i::procs]] for i in range(procs)]
    workers = [
        ctx.Process(
            target=_service_worker,
            args=(args.db, project.pk, group, args.seconds, period, ready, go, release, results),
        )
        for group in groups
    ]
    for w in workers:
        w.start()
    pids = {ready.get(timeout=300) for _ in workers}
    before = cpu_snapshot(pids)
    started = time.perf_counter()
    go.set()
    for _ in workers:
        ready.get(timeout=args.seconds + 600)
    elapsed = time.perf_counter() - started
    after = cpu_snapshot(pids)
    release.set()
    parts = [results.get(timeout=600) for _ in workers]
    for w in workers:
        w.join()
    merged = {"next": [], "submit": [], "cycle": [], "labels": 0, "warmup_labels": 0, "empty": 0, "errors": {}}
    merged["queries_next"], merged["queries_submit"] = [], []
    for part in parts:
        for key in ("next", "submit", "cycle", "queries_next", "queries_submit"):
            merged[key] += part[key]
        for key in ("labels", "warmup_labels", "empty"):
            merged[key] += part[key]
        for name, n in part["errors"].items():
            merged["errors"][name] = merged["errors"].get(name, 0) + n
        if "first_error" in part:
            merged.setdefault("first_error", part["first_error"])
    check = verify(project, [u.pk for u in users])
    out = {
        "annotators": len(users),
        "processes": procs,
        "offered_rate": rate or None,
        "seconds": round(elapsed, 2),
        "latency_ms": {k: summarize(merged[k]) for k in ("next", "submit", "cycle")},
        # SQL statements per call, BEGIN/COMMIT not included
        "statements": {k: summarize(merged[f"queries_{k}"]) for k in ("next", "submit")},
        "labels": merged["labels"],
        "labels_per_s": round(merged["labels"] / elapsed, 1),
        "warmup_labels": merged["warmup_labels"],
        "nothing_left": merged["empty"],
        "errors": merged["errors"],
        "first_error": merged.get("first_error"),
        "check": check,
        "labels_lost": merged["labels"] + merged["warmup_labels"] - check["labels_of_pass"],
        "cpu": cpu_report(before, after, merged["labels"], "bench"),
        "analyze_before_s": analyze_s,
    }
    return out


# --------------------------------------------------------------------------------------------------------------
# Phase 3: HTTP


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """gunicorn serving config.wsgi on 127.0.0.1, DEBUG off, against the benchmark database."""

    def __init__(self, args, workdir: Path) -> None:
        self.port = free_port()
        self.access_log = workdir / "access.log"
        self.error_log = workdir / "gunicorn.log"
        env = {**os.environ, **bench_env(args.db), "DATABASE_CONN_MAX_AGE": "600"}
        self.cmd = [
            sys.executable, "-m", "gunicorn", "config.wsgi:application",
            "-k", "gthread", "-w", str(args.http_workers), "--threads", str(args.http_threads),
            "-b", f"127.0.0.1:{self.port}", "--keep-alive", "30",
            "--access-logfile", str(self.access_log), "--access-logformat", "%(r)s %(s)s %(D)s",
            "--error-logfile", str(self.error_log),
        ]  # fmt: skip
        self.proc = subprocess.Popen(self.cmd, cwd=ROOT, env=env, start_new_session=True)

    def wait_ready(self, token: str, timeout: float = 60) -> None:
        import urllib.error
        import urllib.request

        end = time.monotonic() + timeout
        request = urllib.request.Request(self.url("/api/v1/projects/"), headers={"Authorization": f"Token {token}"})
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise SystemExit(f"gunicorn exited with {self.proc.returncode}; see {self.error_log}")
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.3)
        raise SystemExit(f"gunicorn did not answer within {timeout} s; see {self.error_log}")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def access_log_mark(self) -> int:
        return self.access_log.stat().st_size if self.access_log.exists() else 0

    def server_times(self, since: int) -> dict[str, list[float]]:
        """Server-side request times (ms) from the access log written after ``since`` (a byte offset)."""
        times: dict[str, list[float]] = {"next": [], "label": []}
        with open(self.access_log, "rb") as f:
            f.seek(since)
            for raw in f:
                parts = raw.decode(errors="replace").split()
                if len(parts) < 5 or parts[0] != "POST":
                    continue
                path, micros = parts[1], parts[-1]
                kind = "next" if path.endswith("/assignments/next/") else "label" if path.endswith("/label/") else None
                if kind:
                    times[kind].append(int(micros) / 1000)
        return times

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class HttpError(Exception):
    pass


class Connection:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1: just enough client for this benchmark.

    A general client (httpx) costs about half a core at these request rates, taken from the same two cores the
    server and PostgreSQL run on; this one costs a fraction of that."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.auth = f"Authorization: Token {token}\r\n".encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes = b"") -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
        ).encode()
        self.writer.write(head + self.auth + b"\r\n" + body)
        try:
            status_line = await self.reader.readline()
            if not status_line:
                raise HttpError("connection closed")
            status = int(status_line.split(b" ", 2)[1])
            length, close = 0, False
            while True:
                line = await self.reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
            payload = await self.reader.readexactly(length) if length else b""
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError) as exc:
            await self.close()
            raise HttpError(type(exc).__name__) from exc
        if close:
            await self.close()
        return status, payload

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def _http_clients(server: Server, slug: str, tokens: list[str], seconds: float, period: float) -> dict:
    rec = {
        "next": [],
        "label": [],
        "cycle": [],
        "labels": 0,
        "warmup_labels": 0,
        "empty": 0,
        "status": {},
        "errors": {},
    }
    next_path = f"/api/v1/projects/{slug}/assignments/next/"
    label_path = f"/api/v1/projects/{slug}/assignments/{{}}/label/"
    body = json.dumps({"choice": "left"}).encode()

    def count(key: str) -> None:
        rec["status"][key] = rec["status"].get(key, 0) + 1

    async def cycle(conn: Connection, record: bool) -> bool:
        t0 = time.perf_counter()
        status, payload = await conn.post(next_path)
        t1 = time.perf_counter()
        count(f"next {status}")
        if status == 204:
            rec["empty"] += 1
            return False
        if status != 200:
            return True
        status, _ = await conn.post(label_path.format(json.loads(payload)["id"]), body)
        t2 = time.perf_counter()
        count(f"label {status}")
        created = status == 201
        if record:
            rec["next"].append((t1 - t0) * 1000)
            rec["label"].append((t2 - t1) * 1000)
            rec["cycle"].append((t2 - t0) * 1000)
            rec["labels"] += created
        else:
            rec["warmup_labels"] += created
        return True

    def error(exc: Exception) -> None:
        name = str(exc) or type(exc).__name__
        rec["errors"][name] = rec["errors"].get(name, 0) + 1

    async def annotator(token: str, seed: int) -> None:
        conn = Connection(server.port, token)
        rng = random.Random(seed)
        try:
            await cycle(conn, record=False)
        except HttpError as exc:
            error(exc)
        warm.append(1)
        await start.wait()
        next_start = time.monotonic() + (rng.random() * period if period else 0)
        try:
            while True:
                if period:
                    delay = next_start - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    next_start = max(next_start + period, time.monotonic())
                if time.monotonic() >= deadline_box[0]:
                    return
                try:
                    if not await cycle(conn, record=True):
                        return
                except HttpError as exc:
                    error(exc)
        finally:
            await conn.close()

    start = asyncio.Event()
    deadline_box: list[float] = []
    warm: list[int] = []
    tasks = [asyncio.create_task(annotator(t, i)) for i, t in enumerate(tokens)]
    # Let every annotator finish its warm-up cycle (connection opened, first claim made) before timing.
    while len(warm) < len(tokens):
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    rec["mark"] = server.access_log_mark()
    rec["cpu_before"] = cpu_snapshot(server_pid=server.proc.pid)
    started = time.perf_counter()
    deadline_box.append(time.monotonic() + seconds)
    start.set()
    await asyncio.gather(*tasks)
    rec["elapsed"] = time.perf_counter() - started
    rec["cpu_after"] = cpu_snapshot(server_pid=server.proc.pid)
    return rec


def phase_http(args, project, server: Server, prefix: str, rate: float) -> dict:
    from rest_framework.authtoken.models import Token

    users = pass_users(project, prefix, args.annotators)
    tokens = [Token.objects.get(user=u).key for u in users]
    analyze_s = analyze() if args.analyze else None
    period = args.annotators / rate if rate else 0.0
    rec = asyncio.run(_http_clients(server, project.slug, tokens, args.seconds, period))
    time.sleep(1)  # gunicorn writes the access log line after the response
    server_side = server.server_times(rec["mark"])
    check = verify(project, [u.pk for u in users])
    elapsed = rec["elapsed"]
    return {
        "annotators": len(users),
        "offered_rate": rate or None,
        "server": {"workers": args.http_workers, "threads": args.http_threads},
        "seconds": round(elapsed, 2),
        "client_latency_ms": {k: summarize(rec[k]) for k in ("next", "label", "cycle")},
        "server_latency_ms": {k: summarize(v) for k, v in server_side.items()},
        "labels": rec["labels"],
        "labels_per_s": round(rec["labels"] / elapsed, 1),
        "warmup_labels": rec["warmup_labels"],
        "nothing_left": rec["empty"],
        "status": rec["status"],
        "errors": rec["errors"],
        "check": check,
        "labels_lost": rec["labels"] + rec["warmup_labels"] - check["labels_of_pass"],
        "cpu": cpu_report(rec["cpu_before"], rec["cpu_after"], rec["labels"], "server"),
        "analyze_before_s": analyze_s,
    }


# --------------------------------------------------------------------------------------------------------------
# Report


def print_pass(title: str, res: dict, http: bool) -> None:
    rate = f"paced at {res['offered_rate']:g} labels/s offered" if res["offered_rate"] else "saturated (no think time)"
    print(f"\n  {title}: {res['annotators']} annotators, {rate}, {res['seconds']} s")
    if http:
        print("   server-side (gunicorn %(D)s):")
        for key, s in res["server_latency_ms"].items():
            print(latency_line(key, s))
        print("   client-observed:")
        for key, s in res["client_latency_ms"].items():
            print(latency_line("next+label" if key == "cycle" else key, s))
        print(f"   status codes: {res['status']}")
    else:
        for key, s in res["latency_ms"].items():
            print(latency_line("next+submit" if key == "cycle" else key, s))
        q = res["statements"]
        print(
            f"   SQL statements per call (no BEGIN/COMMIT): next mean {q['next']['mean']:.1f} "
            f"(p99 {q['next']['p99']}, max {q['next']['max']}), submit mean {q['submit']['mean']:.1f}"
        )
    c = res["check"]
    print(
        f"   labels: {res['labels']:,} = {res['labels_per_s']:,.1f} labels/s; errors: {res['errors'] or 'none'}; "
        f"nothing left: {res['nothing_left']}"
    )
    print(
        f"   over-assignment: {c['over_assignment']} (pairs > K labels {c['pairs_over_k_labels']}, "
        f"> K live assignments {c['pairs_over_k_live_assignments']}, (pair, annotator) > 1 label "
        f"{c['pair_annotator_multiple_labels']}); counter drift: {c['pairs_with_counter_drift']}; "
        f"labels lost: {res['labels_lost']}; leases left active: {c['active_assignments_of_pass']}"
    )
    u = res["cpu"]
    client = f", client {u['client_cores']}" if "client_cores" in u else ""
    per_label = (
        f"; CPU per label: PostgreSQL {u['postgres_ms_per_label']} ms, Django {u['django_ms_per_label']} ms"
        if "postgres_ms_per_label" in u
        else ""
    )
    print(
        f"   cores busy {u['machine_busy_cores']} of {os.cpu_count()}: PostgreSQL {u['postgres_cores']}, "
        f"Django {u['django_cores']}{client}, other work {u['other_work_cores']}{per_label}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--annotators", type=int, default=64)
    parser.add_argument("--procs", type=int, default=4, help="processes for the service phase")
    parser.add_argument("--rate", type=float, default=300, help="labels/s offered when paced; 0: none")
    parser.add_argument("--http-workers", type=int, default=4)
    parser.add_argument("--http-threads", type=int, default=8)
    parser.add_argument("--db", default="arbiter_bench")
    parser.add_argument("--fresh", action="store_true", help="drop and re-create the benchmark database")
    parser.add_argument("--skip-import", action="store_true", help="reuse the project a previous run imported")
    parser.add_argument("--skip-atomic-check", action="store_true")
    parser.add_argument("--skip-service", action="store_true")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--paced-only", action="store_true", help="skip the saturated passes")
    parser.add_argument("--explain", action="store_true", help="print the query plans of one assignment_next")
    parser.add_argument(
        "--no-analyze",
        dest="analyze",
        action="store_false",
        help="do not ANALYZE before each pass (what autovacuum would do; it is off on the development machine)",
    )
    args = parser.parse_args()

    created = database_prepare(args.db, args.fresh)
    django_setup(args.db)
    from django.core.management import call_command

    from annotation.models import Project

    call_command("migrate", verbosity=0)
    run_id = time.strftime("%Y%m%d-%H%M%S")
    report: dict = {"run": run_id, "argv": sys.argv[1:], "args": vars(args), "database_created": created}
    report["machine"] = machine_info()
    m = report["machine"]
    print(f"machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['mem_total_gib']} GiB, Python {m['python']}")
    print(f"database: {args.db}: {m['postgresql'].split(' on ')[0]} {m['postgresql_settings']}", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="arbiter-bench-"))
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    out_path = OUT_DIR / f"assignment-{run_id}.json"
    server = None
    try:
        if args.skip_import:
            project = Project.objects.filter(slug=SLUG).first()
            if project is None:
                raise SystemExit(f"--skip-import: no project {SLUG!r} in --db {args.db}; run once without it")
        else:
            print(f"\nphase 1: import {args.pairs:,} pairs (JSONL, pairs format) into a fresh project, K=3", flush=True)
            report["import"] = phase_import(args, workdir)
            project = Project.objects.get(slug=SLUG)
        report["pool_before"] = pool_state(project)
        rates = ([] if args.paced_only else [0.0]) + ([args.rate] if args.rate else [])

        if not args.skip_service:
            print(f"\nphase 2: service (assignment_next + label_submit), {args.procs} processes", flush=True)
            report["service"] = []
            for i, rate in enumerate(rates):
                res = phase_service(args, project, f"r{run_id}-svc{i}", rate)
                report["service"].append(res)
                print_pass("service", res, http=False)

        # One real assignment_next, with the pool as the passes left it, for an annotator who has labelled already.
        from django.contrib.auth import get_user_model

        somebody = get_user_model().objects.filter(username__startswith=f"r{run_id}-svc0-").order_by("pk").first()
        if somebody is not None:
            plans = explain_next(project, somebody)
            report["next_explain"] = plans
            print("\n  one assignment_next, each statement (EXPLAIN ANALYZE): " + ", ".join(
                f"{p['statement']} {p['table'].removeprefix('annotation_')}"
                f"{' FOR UPDATE' if p['for_update'] else ''} {p['ms']} ms"
                for p in plans
            ))  # fmt: skip
            if args.explain:
                for p in plans:
                    print(f"\n  -- {p['sql']}\n{p['plan']}")

        if not args.skip_http:
            print(
                f"\nphase 3: HTTP (gunicorn gthread, {args.http_workers} workers x {args.http_threads} threads, "
                "asyncio HTTP/1.1 client)",
                flush=True,
            )
            lead_token = pass_users(project, "httpwarm", 1)[0].auth_token.key
            server = Server(args, workdir)
            server.wait_ready(lead_token)
            report["http"] = []
            for i, rate in enumerate(rates):
                res = phase_http(args, project, server, f"r{run_id}-http{i}", rate)
                report["http"].append(res)
                print_pass("HTTP", res, http=True)
            server.stop()
            report["server_errors_log_tail"] = server.error_log.read_text()[-3000:] if server.error_log.exists() else ""
        report["pool_after"] = pool_state(project)
    finally:
        if server is not None:
            server.stop()
        out_path.write_text(json.dumps(report, indent=2, default=str))
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nresults: {out_path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
