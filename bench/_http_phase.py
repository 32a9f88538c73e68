"""Phase 3: the real server under gunicorn, driven by a small asyncio HTTP/1.1 client."""

import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from _env import ROOT, bench_env
from _measure import cpu_report, cpu_snapshot, summarize
from _service_phase import analyze, pass_users, verify

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
                path, micros = parts[1].split("?")[0], parts[-1]
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


async def _http_clients(server: Server, slug: str, tokens: list[str], seconds: float, period: float,
                        one_trip: bool = False) -> dict:  # fmt: skip
    """Every annotator loops next + label, or with ``one_trip`` label?next=1 whose answer carries the next pair (the
    first pair of each annotator comes from next/)."""
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

    held: dict[Connection, str | None] = {}

    async def cycle(conn: Connection, record: bool) -> bool:
        t0 = time.perf_counter()
        current = held.pop(conn, None) if one_trip else None
        if current is None:
            status, payload = await conn.post(next_path)
            count(f"next {status}")
            if status == 204:
                rec["empty"] += 1
                return False
            if status != 200:
                return True
            current = json.loads(payload)["id"]
        t1 = time.perf_counter()
        status, payload = await conn.post(label_path.format(current) + ("?next=1" if one_trip else ""), body)
        t2 = time.perf_counter()
        count(f"label {status}")
        created = status == 201
        if one_trip and status in (200, 201):
            following = json.loads(payload).get("next")
            if following is None:
                rec["empty"] += 1
                return False
            held[conn] = following["id"]
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


def phase_http(args, project, server: Server, prefix: str, rate: float, one_trip: bool = False) -> dict:
    from rest_framework.authtoken.models import Token

    users = pass_users(project, prefix, args.annotators)
    tokens = [Token.objects.get(user=u).key for u in users]
    analyze_s = analyze() if args.analyze else None
    period = args.annotators / rate if rate else 0.0
    rec = asyncio.run(_http_clients(server, project.slug, tokens, args.seconds, period, one_trip))
    time.sleep(1)  # gunicorn writes the access log line after the response
    server_side = server.server_times(rec["mark"])
    check = verify(project, [u.pk for u in users])
    elapsed = rec["elapsed"]
    return {
        "annotators": len(users),
        "offered_rate": rate or None,
        "round_trips_per_label": 1 if one_trip else 2,
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
