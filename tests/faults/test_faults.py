"""Faults with real processes (issue 7): a Celery worker SIGKILLed mid export, tasks enqueued in a rolled-back
transaction, Redis gone while people annotate and a lead starts a judge run, and a PostgreSQL connection cut in the
middle of a label write. (Mid judge run: tests/judging/test_worker_runs.py; a killed training process:
tests/training/test_training_worker.py.)"""

from __future__ import annotations

import json
import subprocess
import threading
import time

import psycopg
import pytest
import redis
from django.db import connection, transaction
from django.test import Client

from annotation.models import Assignment, Label, Pair
from annotation.services.assignment import assignment_next
from judging.models import JudgeRun
from judging.services import judge_create
from tests.factories import PASSWORD, UserFactory, make_pairs
from tests.training.conftest import labelled_export
from tests.worker import HttpSession, celery_worker, database_url_of_tests, free_port, wait_for, web_server
from training.models import DatasetExport
from training.services.exports import export_create
from training.services.jobs import job_create
from training.services.recipes import recipe_save

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture(autouse=True)
def file_roots(settings, tmp_path):
    settings.EXPORT_ROOT, settings.TRAINING_ROOT = tmp_path / "exports", tmp_path / "training"


@pytest.fixture
def admin(db):
    return UserFactory(username="fault-admin", is_staff=True)


def queue_length(name: str) -> int:
    from django.conf import settings

    return redis.Redis.from_url(settings.CELERY_BROKER_URL).llen(name)


def test_tasks_enqueued_in_a_rolled_back_transaction_never_reach_the_queue(project, lead, admin, tmp_path, settings):
    export = labelled_export(project, lead, "dpo")  # built inline (run_now)
    recipe = export.recipe
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    before = queue_length("default"), queue_length("gpu")
    with pytest.raises(RuntimeError), transaction.atomic():
        export_create(project=project, recipe=recipe, fmt="dpo", user=lead, run_now=False)
        job_create(export=export, user=admin, settings_={"base_model": str(model)})
        raise RuntimeError("the request failed after queueing")
    assert (queue_length("default"), queue_length("gpu")) == before
    assert DatasetExport.objects.count() == 1  # only the first, inline export
    # the same calls outside a rolled-back transaction do reach the queue (so the check above can fail)
    export_create(project=project, recipe=recipe, fmt="dpo", user=lead, run_now=False)
    assert queue_length("default") == before[0] + 1
    redis.Redis.from_url(settings.CELERY_BROKER_URL).rpop("default")  # nobody consumes it in this test


def _bulk_labelled_pairs(project, n: int) -> None:
    """n pairs with three labels each, written set-based (as bench/export.py does)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO annotation_pair (project_id, external_id, prompt, prompt_is_chat, response_a, response_b,
                   model_a, model_b, metadata, source_preference, gold, gold_explanation, content_hash, shuffle_key,
                   open_slots, label_count, created_at)
               SELECT %(p)s, 'k' || g, jsonb_build_array(jsonb_build_object('role', 'user', 'content',
                      'Question ' || g || ' ' || md5(g::text))), false,
                      'Answer A ' || md5((g * 7)::text), 'Answer B ' || md5((g * 13)::text) || ' longer', '', '', '{}',
                      '', '', '', md5('fault' || g), g, 0, 3, now()
               FROM generate_series(1, %(n)s) g""",
            {"p": project.pk, "n": n},
        )
        cursor.execute(
            """INSERT INTO annotation_label (project_id, pair_id, external_annotator, source, choice, rationale,
                   criteria, created_at)
               SELECT %(p)s, p.id, r.name, 'external', CASE WHEN (p.id + r.k) %% 5 = 0 THEN 'B' ELSE 'A' END, '',
                      '{}', now()
               FROM annotation_pair p CROSS JOIN (VALUES ('x', 0), ('y', 1), ('z', 2)) r(name, k)
               WHERE p.project_id = %(p)s""",
            {"p": project.pk},
        )


def test_a_worker_killed_mid_export_is_replaced_and_the_export_completes_once(project, lead, settings):
    _bulk_labelled_pairs(project, 15_000)  # a build of some seconds: the worker is killed in the middle of it
    recipe = recipe_save(project=project, name="r", config={"source": "human"}, user=lead)
    export = export_create(project=project, recipe=recipe, fmt="dpo", user=lead, run_now=False)
    env = {"EXPORT_ROOT": str(settings.EXPORT_ROOT), "CELERY_VISIBILITY_TIMEOUT": "10"}
    with celery_worker(extra_env=env) as worker:
        assert wait_for(lambda: DatasetExport.objects.get(pk=export.pk).state == "running", timeout=60, interval=0.02)
        worker.kill()  # SIGKILL while it builds
        worker.wait()
    assert DatasetExport.objects.get(pk=export.pk).state == "running"  # left half-done by the dead worker
    with celery_worker(extra_env=env):  # the message comes back after the visibility timeout
        assert wait_for(lambda: DatasetExport.objects.get(pk=export.pk).state == "succeeded", timeout=180)
    export.refresh_from_db()
    again = export_create(project=project, recipe=recipe, fmt="dpo", user=lead, run_now=True)
    assert export.content_hash == again.content_hash and export.rows_train + export.rows_test == 15_000
    lines = (settings.EXPORT_ROOT / export.files["train.jsonl"]["path"]).read_bytes().count(b"\n")
    assert lines == export.rows_train  # written once, not twice


@pytest.fixture
def doomed_redis(tmp_path):
    """A Redis server of this test's own (so stopping it disturbs nothing else), stopped by the test."""
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)  # fmt: skip
    url = f"redis://127.0.0.1:{port}"
    assert wait_for(lambda: _ping(url), timeout=10)
    yield url, proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def _ping(url: str) -> bool:
    try:
        return redis.Redis.from_url(url, socket_timeout=0.5).ping()
    except redis.RedisError:
        return False


def test_with_redis_down_annotation_works_and_a_judge_run_fails_clearly(project, lead, annotator, doomed_redis):
    """The web app in its own process, with its broker and cache on a Redis that is then stopped: logins (throttling
    skipped), annotation and label writes go on; starting a judge run answers 503 and records the run as failed."""
    url, proc = doomed_redis
    make_pairs(project, 3)
    judge = judge_create(project=project, user=lead, name="j", base_url="http://127.0.0.1:9/v1", model="m")
    with web_server({"CELERY_BROKER_URL": f"{url}/0", "CACHE_URL": f"{url}/1"}) as base:
        proc.terminate()
        proc.wait()
        assert not _ping(url)
        web = HttpSession(base)
        assert web.log_in(annotator.username, PASSWORD).status == 302  # throttling is skipped, not the login
        assert web.request("GET", f"/p/{project.slug}/annotate/").status == 200
        assert web.request("POST", f"/p/{project.slug}/annotate/next/").status == 200
        assignment = Assignment.objects.get(annotator=annotator, state="active")
        r = web.request("POST", f"/p/{project.slug}/annotate/{assignment.public_id}/submit/",
                        json_body={"choice": "left"})  # fmt: skip
        assert r.status == 200 and Label.objects.count() == 1
        lead_web = HttpSession(base)
        assert lead_web.log_in(lead.username, PASSWORD).status == 302
        started = time.monotonic()
        r = lead_web.request("POST", f"/api/v1/projects/{project.slug}/judge-runs/",
                             json_body={"judge": str(judge.public_id)})  # fmt: skip
        assert r.status == 503 and "task queue is unreachable" in r.json()["detail"]
        assert time.monotonic() - started < 30
    run = JudgeRun.objects.get()
    assert run.state == "failed" and "unreachable" in run.error and not run.verdicts.exists()


def test_a_connection_cut_mid_write_leaves_nothing_half_written(project, annotator):
    pair = make_pairs(project, 1)[0]
    assignment = assignment_next(project=project, annotator=annotator)
    url = database_url_of_tests()
    blocker = psycopg.connect(url, autocommit=False)
    blocker.execute("SELECT id FROM annotation_pair WHERE id = %s FOR UPDATE", [pair.pk])  # the write will wait here
    outcome = {}

    def submit():
        client = Client(raise_request_exception=False)
        client.force_login(annotator)
        try:
            submit_url = f"/p/{project.slug}/annotate/{assignment.public_id}/submit/"
            body = json.dumps({"choice": "left"})
            outcome["response"] = client.post(submit_url, body, content_type="application/json")
        except Exception as exc:  # the request's connection was cut under it
            outcome["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=submit)
    thread.start()
    with psycopg.connect(url, autocommit=True) as admin:
        waiting = None
        deadline = time.monotonic() + 30
        while waiting is None and time.monotonic() < deadline:
            row = admin.execute("""SELECT pid FROM pg_stat_activity WHERE datname = current_database()
                                   AND wait_event_type = 'Lock' AND query ILIKE '%%annotation_label%%'""").fetchone()
            waiting = row[0] if row else None
            time.sleep(0.05)
        assert waiting, "the label write never reached the lock"
        admin.execute("SELECT pg_terminate_backend(%s)", [waiting])
    thread.join(30)
    blocker.rollback()
    blocker.close()
    assert "error" in outcome or outcome["response"].status_code >= 500
    assert not Label.objects.exists()  # the assignment update and the label insert went with the connection
    assignment.refresh_from_db()
    assert assignment.state == "active" and Pair.objects.get(pk=pair.pk).label_count == 0
    client = Client()
    client.force_login(annotator)
    retry = client.post(f"/p/{project.slug}/annotate/{assignment.public_id}/submit/", json.dumps({"choice": "left"}),
                        content_type="application/json")  # fmt: skip
    assert retry.status_code == 200 and Label.objects.count() == 1 and Pair.objects.get(pk=pair.pk).label_count == 1
