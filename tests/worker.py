"""Real processes for tests: a Celery worker and the web app (gunicorn), pointed at the test database and the
configured broker, and an HTTP client for the web process."""

from __future__ import annotations

import http.cookiejar
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]


def database_url_of_tests() -> str:
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{Path(s['NAME']).resolve()}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def process_env(extra_env: dict | None = None) -> dict:
    """The environment of a process the tests start: this one's, on the test database, broker and media folder."""
    return {
        **os.environ,
        "DATABASE_URL": database_url_of_tests(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }


@contextmanager
def celery_worker(queues: str = "default", extra_env: dict | None = None):
    env = process_env(extra_env)
    log = open(Path(settings.VAR_DIR) / f"test-worker-{os.getpid()}.log", "w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "-Q",
            queues,
            "--pool",
            "solo",
            "--loglevel",
            "INFO",
            "-n",
            f"test-{os.getpid()}@%h",
            "--without-mingle",
            "--without-gossip",
        ],  # fmt: skip
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield proc
    finally:
        _stop(proc)
        log.close()


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def web_server(extra_env: dict | None = None):
    """The app served by gunicorn in a process of its own (its own settings from the environment, its own broker
    and cache connections), on the test database. Yields the base URL."""
    port = free_port()
    env = process_env(extra_env)
    log = open(Path(settings.VAR_DIR) / f"test-web-{os.getpid()}.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1",
         "--threads", "4", "--timeout", "120"],  # fmt: skip
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        if not wait_for(lambda: proc.poll() is not None or _answers(f"{base}/healthz"), timeout=60, interval=0.1):
            raise RuntimeError(f"the web server did not start; see {log.name}")
        if proc.poll() is not None:
            raise RuntimeError(f"the web server exited with {proc.returncode}; see {log.name}")
        yield base
    finally:
        _stop(proc)
        log.close()


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2).close()
    except urllib.error.HTTPError:
        return True  # an answer, even an error page
    except OSError:
        return False
    return True


def http_ok(url: str) -> bool:
    """Whether ``url`` answers 200 now."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@dataclass
class HttpResponse:
    status: int
    body: bytes
    headers: dict

    def json(self):
        return json.loads(self.body)


class HttpSession:
    """A browser-like client over real HTTP: cookies kept, redirects not followed, Django's CSRF token sent."""

    def __init__(self, base: str):
        self.base = base
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies), _NoRedirect)

    def csrf_token(self) -> str:
        return next(c.value for c in self.cookies if c.name == "csrftoken")

    def request(self, method: str, path: str, *, form: dict | None = None, json_body=None,
                timeout: float = 60) -> HttpResponse:  # fmt: skip
        headers, data = {}, None
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif json_body is not None:
            data = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        if method != "GET":
            headers["X-CSRFToken"] = self.csrf_token()
            headers["Referer"] = self.base + "/"
        request = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        try:
            with self.opener.open(request, timeout=timeout) as response:
                return HttpResponse(response.status, response.read(), dict(response.headers))
        except urllib.error.HTTPError as exc:  # 3xx (not followed), 4xx, 5xx
            return HttpResponse(exc.code, exc.read(), dict(exc.headers))

    def log_in(self, username: str, password: str) -> HttpResponse:
        self.request("GET", "/accounts/login/")
        return self.request("POST", "/accounts/login/", form={"username": username, "password": password})
