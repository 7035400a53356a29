# MarketPulse — `make run` (the demo on embedded defaults) and `make test` (the whole suite).
# Both create .venv when missing, install what they need, and are safe to run twice.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python

.DEFAULT_GOAL := help
.PHONY: help run test lint bench install dev clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(PY):
	@bash scripts/bootstrap.sh "$(PYTHON)" "$(VENV)"

$(VENV)/.installed-base: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed-base
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(VENV)/.installed-base ## install the package (base dependencies)
dev: $(VENV)/.installed-dev ## install the package with the dev tools

run: $(VENV)/.installed-base ## the main job: the embedded pipeline replaying the bundled demo (Ctrl-C to stop)
	$(BIN)/marketpulse run $(ARGS)

test: $(VENV)/.installed-dev ## the whole test suite
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev ## ruff (lint + format check) and mypy
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts
	$(BIN)/mypy

bench: $(VENV)/.installed-base ## benchmarks with their references (figures in docs/performance.md)
	$(BIN)/marketpulse bench ingest --json

clean: ## remove the virtualenv, caches and the local data dir
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache data
