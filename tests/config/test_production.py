"""Production settings: `check --deploy` is clean under production values (secrets from the environment or a
*_FILE), /healthz reports the database and the broker, logs are JSON lines, and logins are throttled."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.cache import cache
from django.test import Client

from config.login import _key
from tests.factories import PASSWORD, UserFactory

ROOT = Path(__file__).resolve().parents[2]


def test_check_deploy_is_clean_with_production_values(tmp_path):
    secret = tmp_path / "secret_key"
    secret.write_text("k" * 20 + "-production-secret-from-a-mounted-file-0123456789\n")
    # (the browser tests set DJANGO_ALLOW_ASYNC_UNSAFE in this process; a deployment never has it)
    unset = {"DEBUG", "SECRET_KEY", "SECRET_KEY_FILE", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env |= {"ARBITER_ENV": "production", "SECRET_KEY_FILE": str(secret), "ALLOWED_HOSTS": "arbiter.example.com",
            "ARBITER_VAR_DIR": str(tmp_path / "var")}  # fmt: skip
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=ROOT,
                            env=env, capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.django_db
def test_healthz_reports_database_and_broker(settings):
    client = Client()
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok", "database": "ok", "broker": "ok"}
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    response = client.get("/healthz")
    assert response.status_code == 503 and response.json()["broker"] == "error"
    assert response.json()["database"] == "ok"


def test_json_log_lines():
    from config.logs import JsonFormatter

    record = logging.LogRecord("arbiter.test", logging.WARNING, __file__, 1, "job %s failed", (7,), None)
    record.task_id = "abc"
    line = json.loads(JsonFormatter().format(record))
    assert line["level"] == "WARNING" and line["message"] == "job 7 failed" and line["task_id"] == "abc"
    assert line["logger"] == "arbiter.test" and line["time"].endswith("+00:00")


@pytest.mark.django_db
def test_logins_are_throttled_per_account_and_address(settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    user = UserFactory(username="throttled")
    for address in ("10.0.0.1", "10.0.0.2"):
        cache.delete(_key(type("R", (), {"META": {"REMOTE_ADDR": address}})(), "throttled"))
    client = Client(REMOTE_ADDR="10.0.0.1")
    for _ in range(3):
        response = client.post("/accounts/login/", {"username": "throttled", "password": "wrong"})
        assert response.status_code == 200 and b"Please enter a correct username" in response.content
    refused = client.post("/accounts/login/", {"username": "throttled", "password": PASSWORD})
    assert refused.status_code == 200 and b"Too many failed logins" in refused.content
    assert "_auth_user_id" not in client.session  # the right password does not get through either
    other = Client(REMOTE_ADDR="10.0.0.2")
    assert other.post("/accounts/login/", {"username": user.username, "password": PASSWORD}).status_code == 302
