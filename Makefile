# Arbiter: `make run` (everything on embedded defaults) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
export PYTHONUNBUFFERED := 1

.PHONY: run test test-sqlite install migrate demo lint bench-assignment clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(VENV)/.installed node_modules/.installed

migrate: install
	$(PY) manage.py migrate --no-input

demo: migrate
	$(PY) manage.py demo_setup

## Web server + Celery worker on SQLite and a filesystem broker (or DATABASE_URL / CELERY_BROKER_URL). Ctrl-C stops both.
run: demo
	$(PY) manage.py devserver

## The full test suite (PostgreSQL/Redis tests need DATABASE_URL / CELERY_BROKER_URL; .ci/run sets them).
test: install
	$(PY) -m pytest

## The engine, submit, import and page tests again on the embedded defaults (SQLite, filesystem broker): CI runs
## `make test` against PostgreSQL and Redis, and this keeps the `make run` path covered too.
test-sqlite: install
	env -u DATABASE_URL -u CELERY_BROKER_URL -u CACHE_URL -u ARBITER_REQUIRE_SERVICES $(PY) -m pytest -q \
		tests/annotation/test_assignment.py tests/annotation/test_labels.py tests/annotation/test_views.py \
		tests/annotation/test_api.py tests/annotation/test_import.py tests/annotation/test_worker.py

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench-assignment: install
	$(PY) bench/assignment.py

clean:
	rm -rf $(VENV) node_modules var
