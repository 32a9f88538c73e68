"""Phase 2: simulated annotators calling the services in worker processes; verification and EXPLAIN."""

import multiprocessing as mp
import os
import random
import re
import signal
import threading
import time

from _env import django_setup
from _measure import cpu_report, cpu_snapshot, summarize

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
    # Only regular items hold one of a pair's K slots; mirrored repeats (Project.repeat_rate), calibration and
    # practice items are extra answers by design and are counted on their own.
    regular_labels = """(SELECT l.* FROM annotation_label l LEFT JOIN annotation_assignment a ON a.id = l.assignment_id
                WHERE l.project_id = %(p)s AND (a.kind IS NULL OR a.kind = 'regular'))"""
    queries = {
        "pairs_over_k_labels": f"""SELECT count(*) FROM (SELECT pair_id FROM {regular_labels} r
                GROUP BY pair_id HAVING count(*) > %(k)s) x""",
        "pairs_over_k_live_assignments": """SELECT count(*) FROM (SELECT pair_id FROM annotation_assignment
                WHERE project_id = %(p)s AND state IN ('active', 'done') AND kind = 'regular' GROUP BY pair_id
                HAVING count(*) > %(k)s) x""",
        "pair_annotator_multiple_labels": f"""SELECT count(*) FROM (SELECT pair_id, annotator_id FROM {regular_labels} r
                WHERE annotator_id IS NOT NULL GROUP BY 1, 2 HAVING count(*) > 1) x""",
        "pair_annotator_multiple_assignments": """SELECT count(*) FROM (SELECT pair_id, annotator_id,
                kind = 'repeat' FROM annotation_assignment WHERE project_id = %(p)s GROUP BY 1, 2, 3
                HAVING count(*) > 1) x""",
        "repeat_labels": """SELECT count(*) FROM annotation_label l
                JOIN annotation_assignment a ON a.id = l.assignment_id
                WHERE l.project_id = %(p)s AND a.kind = 'repeat'""",
        # open_slots must equal K - (done + live leases), label_count the done ones, on every pair served.
        "pairs_with_counter_drift": """SELECT count(*) FROM annotation_pair p JOIN (SELECT pair_id,
                count(*) FILTER (WHERE state IN ('active', 'done')) AS held,
                count(*) FILTER (WHERE state = 'done') AS done
                FROM annotation_assignment WHERE project_id = %(p)s AND kind = 'regular' GROUP BY pair_id) a
                ON a.pair_id = p.id WHERE p.open_slots <> %(k)s - a.held OR p.label_count <> a.done""",
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
