# Two commands matter: `make run` (start the API on SQLite) and `make test` (everything CI runs:
# ruff, mypy --strict on the source and the tests, import-linter, pytest).
# Each creates ./.venv and installs the project into it on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: clients docs help run test lint bench clean

help:  ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 10

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)  ## start the API on SQLite (http://127.0.0.1:8000/docs)
	$(BIN)/todo-api serve

lint: $(STAMP)  ## ruff, mypy --strict (source and tests), import-linter
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/mypy tests
	$(BIN)/lint-imports

test: lint  ## everything CI runs: lint, then pytest
	$(BIN)/pytest -q

DOCS ?= build/docs
docs: $(STAMP)  ## the Python API reference (pdoc) in build/docs/index.html
	$(BIN)/pdoc --docformat markdown --no-show-source -o $(DOCS) \
		todo_domain todo_domain.testing todo_domain.testing.contract todo_testing.strategies todo_adapters

clients: $(STAMP)  ## regenerate clients/typescript (OpenAPI document, types) and type-check it
	$(BIN)/python scripts/openapi_document.py > clients/typescript/openapi.json
	cd clients/typescript && npm ci --no-audit --no-fund && npm run generate && npm run check

# The benchmark's server and worker run from a production install (`[all]`, no dev tools):
# dev-only packages (werkzeug, yaml, rich) are imported opportunistically by libraries the
# server uses and would add ≈ 5 MB to the memory row.
SERVE_VENV := .venv-serve
SERVE_STAMP := $(SERVE_VENV)/.installed

$(SERVE_STAMP): pyproject.toml
	$(PYTHON) -m venv $(SERVE_VENV)
	$(SERVE_VENV)/bin/pip install --quiet --upgrade pip
	$(SERVE_VENV)/bin/pip install --quiet -e '.[all]'
	touch $(SERVE_STAMP)

bench: $(STAMP) $(SERVE_STAMP)  ## the benchmark (installs wrk; results in bench/results/)
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk) \
		|| echo "wrk could not be installed: the benchmark falls back to its Python client"
	BENCH_TODO_API=$(SERVE_VENV)/bin/todo-api $(BIN)/python bench/run.py

clean:  ## remove the virtual environment and caches
	rm -rf $(VENV) $(SERVE_VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
