"""Benchmark environment: its own PostgreSQL database, Django set-up, machine description."""

import os
import platform
import re
import sys
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


def database_prepare(db: str, fresh: bool, *, name_re: re.Pattern = DB_NAME_RE) -> bool:
    """Create the benchmark database (dropping it first with fresh). Returns True when it was created. Only
    databases whose names match ``name_re`` are ever touched."""
    import psycopg

    if not name_re.match(db):
        raise SystemExit(f"--db {db!r}: this benchmark only uses databases matching {name_re.pattern}")
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
