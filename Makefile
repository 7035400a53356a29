# MarketPulse — `make run` (the demo on embedded defaults) and `make test` (the whole suite).
# Both create .venv when missing, install what they need, and are safe to run twice.
# `make test` also starts Kafka, Kafka Connect and Redis on test ports (scripts/services/test-env.sh) and always
# stops them afterwards; `make services-up|services-down|services-status` run them for you (docs/services.md).

SHELL  := /bin/bash

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python

.DEFAULT_GOAL := help
.PHONY: help run test lint bench install dev clean services-up services-down services-status

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(PY):
	@bash scripts/bootstrap.sh "$(PYTHON)" "$(VENV)"

$(VENV)/.installed-base: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml Makefile $(VENV)/.installed-base
	$(PY) -m pip install --quiet -e '.[dev,kafka,redis,ml,api,dashboard,report]'
	@touch $@

$(VENV)/.installed-run: pyproject.toml Makefile $(VENV)/.installed-base
	$(PY) -m pip install --quiet -e '.[api,dashboard]'
	@touch $@

$(VENV)/.installed-services: pyproject.toml Makefile $(VENV)/.installed-base
	$(PY) -m pip install --quiet -e '.[kafka,redis]'
	@touch $@

install: $(VENV)/.installed-base ## install the package (base dependencies)
dev: $(VENV)/.installed-dev ## install the package with the dev tools

run: $(VENV)/.installed-run ## the main job: the demo replay served by the API and the dashboard (Ctrl-C to stop)
	$(BIN)/marketpulse run $(ARGS)

# The services are stopped on every exit (pytest failing, Ctrl-C too) and pytest's exit code is kept. When they
# cannot start, the tests that need them skip with the reason — or fail under CI=true, and so does this target.
test: $(VENV)/.installed-dev ## the whole test suite (starts and stops Kafka, Connect, Redis on test ports)
	@trap 'bash scripts/services/test-env.sh down >&2 || true' EXIT; \
	services=1; \
	bash scripts/services/install-deps.sh || services=0; \
	if [ $$services = 1 ]; then exports="$$(bash scripts/services/test-env.sh up)" && eval "$$exports" || services=0; fi; \
	if [ $$services = 0 ]; then \
	  echo "warning: the test services (Kafka, Connect, Redis) did not start; tests needing them skip (fail under CI=true)" >&2; \
	fi; \
	$(BIN)/pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc = 0 ] && [ $$services = 0 ] && [ "$${CI:-}" = true ]; then \
	  echo "error: CI=true and the test services did not start (see the messages above)" >&2; rc=1; \
	fi; \
	exit $$rc

lint: $(VENV)/.installed-dev ## ruff (lint + format check) and mypy
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts
	$(BIN)/mypy

services-up: $(VENV)/.installed-services ## start Redis, Kafka, Kafka Connect on 127.0.0.1 (SERVICES="kafka" for some)
	@bash scripts/services/up.sh $(SERVICES)

services-down: $(VENV)/.installed-services ## stop what services-up started
	@bash scripts/services/down.sh $(SERVICES)

services-status: $(VENV)/.installed-services ## state, PID and ports of each service
	@bash scripts/services/status.sh $(SERVICES)

bench: $(VENV)/.installed-base ## benchmarks with their references (figures in docs/performance.md)
	$(BIN)/marketpulse bench ingest --json

clean: ## stop the services, remove the virtualenv, caches and the local data dir
	@if [ -x $(PY) ]; then bash scripts/services/down.sh || true; bash scripts/services/test-env.sh down || true; fi
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache data
