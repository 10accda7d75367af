# sustain — the two front-door commands are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS := dev,ml,elasticsearch,mlflow,aiu,deploy
HOST ?= 127.0.0.1
PORT ?= 8000

ES_TYPES := tests/es_types/node_modules/.installed
ELASTALERT := .cache/elastalert-venv/.requirements.sha256
SCHEMATHESIS := .cache/schemathesis-venv/.requirements.sha256
# Debian packages the tests use: Chromium (web UI, through Playwright; no browser download at run time), Redis
# (inference units; the tests start their own server on loopback), shellcheck (compose/smoke.sh).
SYSTEM_TOOLS := /usr/bin/chromium /usr/bin/redis-server /usr/bin/shellcheck
SYSTEM_PACKAGES := chromium redis-server shellcheck

.PHONY: run test venv lint typecheck unit bench bench-drift bench-aiu soak overload clean system-tools

venv: $(STAMP)

$(STAMP): pyproject.toml examples/plugin/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
	$(BIN)/python -m pip install --quiet -e examples/plugin
	@touch $(STAMP)

## make run: install, then serve examples/sustain.yaml on the embedded store with demo traffic.
run: $(STAMP)
	$(BIN)/sustain serve --config examples/sustain.yaml --demo-traffic --host $(HOST) --port $(PORT)

## make test: install what tests need, then lint, type checks and the whole suite.
test: $(STAMP) $(ES_TYPES) $(ELASTALERT) $(SCHEMATHESIS) system-tools
	$(MAKE) lint typecheck unit

# One apt-get run installs whatever is missing.
system-tools:
	@missing=""; for tool in $(SYSTEM_TOOLS); do test -x $$tool || missing=1; done; \
	if [ -n "$$missing" ]; then apt-get update && apt-get install -y $(SYSTEM_PACKAGES); fi

# Elastic's published TypeScript API types and tsc: every generated Elasticsearch body is checked against them.
$(ES_TYPES): tests/es_types/package.json tests/es_types/package-lock.json
	@command -v npm >/dev/null || (apt-get update && apt-get install -y nodejs npm)
	cd tests/es_types && npm ci --no-audit --no-fund --loglevel=error
	@touch $(ES_TYPES)

# ElastAlert2 2.31 (Python 3.12, pins elasticsearch 7.10.1) in a venv of its own: exported rules are loaded by it.
$(ELASTALERT): tests/elastalert/requirements.txt tests/elastalert/setup_venv.sh
	bash tests/elastalert/setup_venv.sh
	@touch $@

# Schemathesis (its own pins) in a venv of its own: tests/test_openapi_fuzz.py fuzzes the API from /openapi.json.
$(SCHEMATHESIS): tests/schemathesis/requirements.txt tests/schemathesis/setup_venv.sh
	bash tests/schemathesis/setup_venv.sh
	@touch $@

lint: $(STAMP)
	$(BIN)/ruff check sustain tests benchmarks examples compose
	$(BIN)/ruff format --check sustain tests benchmarks examples compose

typecheck: $(STAMP)
	$(BIN)/mypy sustain tests benchmarks examples/plugin compose

unit: $(STAMP)
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/categories.py
	$(BIN)/python benchmarks/drift.py --setup

bench-aiu: $(STAMP) system-tools
	$(BIN)/python benchmarks/aiu.py

## make soak: ten minutes of ingest at half the measured maximum, RSS every 30 s (README: bounded memory).
soak: $(STAMP)
	$(BIN)/python benchmarks/soak.py

## make overload: p99 answer time at four times the sustainable rate, beside the 5 s bound (about a minute per run).
overload: $(STAMP)
	$(BIN)/python benchmarks/overload.py --runs 3

bench-drift: $(STAMP)
	$(BIN)/python benchmarks/drift.py --setup

clean:
	rm -rf $(VENV) .cache .mypy_cache .pytest_cache .ruff_cache data tests/es_types/node_modules
