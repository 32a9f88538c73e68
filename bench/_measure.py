"""CPU accounting from /proc and latency statistics."""

import os
import time
from pathlib import Path

import _env

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
        if comm.startswith("postgres:") and (f" {_env.DB_NAME} " in comm or any(name in comm for name in PG_SHARED))
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
