from __future__ import annotations

import os

import pytest
from django.test import Client

from annotation.models import Membership
from tests.factories import PASSWORD, ProjectFactory, UserFactory, member

postgres_only = pytest.mark.postgres


def pytest_collection_modifyitems(config, items):
    """Tests marked ``postgres`` (concurrency, locking) need the real server; on SQLite they are skipped."""
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        return
    if os.environ.get("ARBITER_REQUIRE_SERVICES"):
        raise pytest.UsageError("ARBITER_REQUIRE_SERVICES is set but DATABASE_URL is not PostgreSQL.")
    skip = pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL=postgres://... (CI does)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


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
    client = Client(enforce_csrf_checks=True)
    assert client.login(username=user.username, password=PASSWORD)
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
