# Arbiter: `make run` (everything on embedded defaults) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
export PYTHONUNBUFFERED := 1

.PHONY: run test install migrate demo lint bench-assignment clean

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

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench-assignment: install
	$(PY) bench/assignment.py

clean:
	rm -rf $(VENV) node_modules var
