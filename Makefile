# Two commands matter: `make serve` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_DIR := tests/conformance

.PHONY: serve test test-postgres lint typecheck unit conformance bench bench-catalog upstream clean install

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

serve: $(STAMP)
	$(BIN)/scaffolder serve --config app-config.yaml

$(NODE_DIR)/node_modules/.package-lock.json: $(NODE_DIR)/package-lock.json
	cd $(NODE_DIR) && npm ci --no-audit --no-fund

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP) $(NODE_DIR)/node_modules/.package-lock.json lint typecheck
	$(BIN)/pytest

unit: $(STAMP)
	$(BIN)/pytest --ignore=tests/conformance

# The whole Python suite with PostgreSQL as every test's database (a throwaway cluster).
test-postgres: $(STAMP)
	SCAFFOLDER_TEST_DATABASE=postgres $(BIN)/pytest --ignore=tests/conformance -m "not upstream"

bench: $(STAMP)
	$(BIN)/python bench/bench_tasks.py

bench-catalog: $(STAMP)
	$(BIN)/python bench/bench_catalog.py

# The tests marked `upstream` (pytest -m upstream) run against a private copy of the upstream
# Backstage reference; `make test` skips them unless its node_modules are installed, which
# this does once (npm ci into the bench cache, about a minute).
upstream: $(STAMP)
	$(BIN)/python bench/bench_catalog.py --install-only
	$(BIN)/pytest -m upstream

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache $(NODE_DIR)/node_modules
