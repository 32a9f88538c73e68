#!/usr/bin/env python
"""Assignment and import benchmark (issue 2). Run by hand, never as a test:

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
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _env import OUT_DIR, ROOT, SLUG, database_prepare, django_setup, machine_info
from _http_phase import Server, phase_http
from _import_phase import phase_import
from _measure import latency_line
from _service_phase import explain_next, pass_users, phase_service, pool_state

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
        f"labels lost: {res['labels_lost']}; leases left active: {c['active_assignments_of_pass']}; "
        f"mirrored repeats answered (extra by design): {c['repeat_labels']}"
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
    # one process per core: on 2 cores 2 x 4 served 224 labels/s where 4 x 8 served 178 (docs/PERFORMANCE.md)
    parser.add_argument("--http-workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--http-threads", type=int, default=4)
    parser.add_argument("--db", default="arbiter_bench")
    parser.add_argument("--fresh", action="store_true", help="drop and re-create the benchmark database")
    parser.add_argument("--skip-import", action="store_true", help="reuse the project a previous run imported")
    parser.add_argument("--skip-atomic-check", action="store_true")
    parser.add_argument("--skip-service", action="store_true")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--round-trips", choices=["1", "2", "both"], default="both",
                        help="HTTP: next + label (2), label?next=1 carrying the next pair (1), or both")  # fmt: skip
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
            trips = {"1": [True], "2": [False], "both": [False, True]}[args.round_trips]
            for i, (one_trip, rate) in enumerate((t, r) for t in trips for r in rates):
                res = phase_http(args, project, server, f"r{run_id}-http{i}", rate, one_trip)
                report["http"].append(res)
                print_pass(f"HTTP ({'1 round trip' if one_trip else '2 round trips'})", res, http=True)
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
