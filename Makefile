# The two commands: `make run` serves the portal against the local cloud; `make test` passes
# the whole suite. Both set everything up first, on a fresh Debian machine with Python 3.11+.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
export PYTHONWARNINGS ?= ignore::DeprecationWarning
PORTAL_CLOUD_QUEUE ?= cloud.primary
# The mirror sync's queue: "sync." and the cloud queue's region, as portal/settings/base.py derives it.
PORTAL_SYNC_QUEUE ?= sync.$(shell q='$(PORTAL_CLOUD_QUEUE)'; echo "$${q#*.}")
# `make worker` consumes them all; `make worker WORKER_QUEUES=sync.primary` runs one for one queue.
PORTAL_DEFAULT_QUEUE ?= default
WORKER_QUEUES ?= $(PORTAL_DEFAULT_QUEUE),$(PORTAL_CLOUD_QUEUE),$(PORTAL_SYNC_QUEUE)
# The portal drives the devcloud unless another cloud is configured.
USE_DEVCLOUD := $(if $(filter-out devcloud-admin,$(OS_CLOUD)),,yes)

.PHONY: help setup venv services chromium devcloud devcloud-down migrate demo run worker beat \
        test test-unit lock vendor bench clean slurm-tools

help:
	@echo "make run    set up and serve the portal on http://127.0.0.1:8000"
	@echo "make test   set up and run the whole test suite"
	@echo "make worker / make beat / make devcloud / make devcloud-down / make lock / make bench"

$(BIN)/.installed: requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip sync -q --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	touch $@

venv: $(BIN)/.installed

services:
	@scripts/ensure-services.sh

chromium:
	@scripts/ensure-chromium.sh

# Debian's cloud-init, slurm-wlm and munge: the cluster tests check what the portal renders with them.
slurm-tools:
	@scripts/ensure-slurm.sh

devcloud:
	@if [ -x devcloud/devcloud ]; then devcloud/devcloud up; else echo "no devcloud/ in this checkout"; fi

devcloud-down:
	@if [ -x devcloud/devcloud ]; then devcloud/devcloud down; fi

setup: venv services
	@if [ -n "$(USE_DEVCLOUD)" ]; then $(MAKE) --no-print-directory devcloud; fi

migrate: setup
	$(BIN)/python manage.py migrate --noinput -v0

demo: migrate
	$(BIN)/python manage.py ensure_demo_admin
	@if [ -n "$(USE_DEVCLOUD)" ]; then $(BIN)/python manage.py ensure_demo_allocation; fi
	@if [ -n "$(USE_DEVCLOUD)" ]; then $(BIN)/python manage.py isolate_projects; fi

# gunicorn, a Celery worker per queue and beat under honcho (Procfile), each restarted if it dies.
run: demo
	@PORTAL_CLOUD_QUEUE=$(PORTAL_CLOUD_QUEUE) PORTAL_SYNC_QUEUE=$(PORTAL_SYNC_QUEUE) \
	  PORTAL_DEFAULT_QUEUE=$(PORTAL_DEFAULT_QUEUE) scripts/run.sh

worker: venv
	$(BIN)/celery -A portal worker -l info -Q $(WORKER_QUEUES) --concurrency 4

beat: venv
	$(BIN)/celery -A portal beat -l info

# The linter first (ruff, configured in pyproject.toml): it takes a second and fails before the
# long run does. pytest-django prefers DJANGO_SETTINGS_MODULE from the environment over
# pyproject.toml: pin it.
# scripts/test-split runs the unit tests beside the cloud and browser tests (each with its own test
# database and Redis databases); with PYTEST_ARGS, pytest runs once with them.
test: setup chromium sso-provider slurm-tools
	$(BIN)/ruff check .
	DJANGO_SETTINGS_MODULE=portal.settings.test scripts/test-split $(PYTEST_ARGS)

# The long runs (marker `load`), at the sizes the issues name where make test runs smaller ones: the
# worker killed after every step of a first launch (make test: three), a fifth of requests failing
# under 20 launches and 40 actions (make test: 8 and 16), 100 servers at once (make test: 32), a class
# of 30 (make test: 12), the rest of the Slurm elastic loop and the class launch benchmark.
.PHONY: test-load
test-load: setup slurm-tools
	DJANGO_SETTINGS_MODULE=portal.settings.test $(BIN)/python -m pytest -m load $(PYTEST_ARGS)

# The OpenID Connect provider the SSO browser tests sign in through (tests/sso/, pinned by its
# lock file; after the first install nothing is fetched until the lock file changes).
.PHONY: sso-provider
sso-provider: tests/sso/node_modules/.installed

tests/sso/node_modules/.installed: tests/sso/package.json tests/sso/package-lock.json
	cd tests/sso && npm ci --prefer-offline --no-audit --no-fund --loglevel=error
	touch $@

test-unit: venv services slurm-tools
	$(BIN)/ruff check .
	DJANGO_SETTINGS_MODULE=portal.settings.test $(BIN)/python -m pytest -m "not integration and not browser" $(PYTEST_ARGS)

lock: venv
	$(BIN)/uv pip compile -q --python $(BIN)/python pyproject.toml --extra test -o requirements.lock

vendor:
	scripts/vendor-static.sh

bench: setup
	@for b in bench/*.py; do [ -e "$$b" ] && $(BIN)/python "$$b"; done; true

clean:
	rm -rf $(VENV) var/staticfiles .pytest_cache
