# InfoU: `make run` starts the whole stack, `make test` runs every check and test.
# Both bootstrap their own environment: uv (installed into .tools/ if missing), then the
# locked dependencies of the workspace.

SHELL := /bin/bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)
PYTEST_ARGS ?=

.PHONY: bootstrap run test lint typecheck protos protos-check pytest e2e bench clean

$(CURDIR)/.tools/bin/uv:
	$(PYTHON) -m venv $(CURDIR)/.tools
	$(CURDIR)/.tools/bin/pip install --quiet --disable-pip-version-check "uv>=0.8,<0.20"

bootstrap: $(UV)
	$(UV) sync --frozen --quiet

run: bootstrap
	$(UV) run --frozen infou up

test: bootstrap protos-check lint typecheck pytest

lint:
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen ruff check .

# Every test folder has its own conftest.py, so each is checked on its own (same strictness).
TEST_DIRS := libs/tests gateway/tests catalog-service/tests session-service/tests \
	generation-service/tests feedback-service/tests realtime-service/tests tests/deploy tests/e2e

typecheck:
	$(UV) run --frozen mypy
	@status=0; for dir in $(TEST_DIRS); do \
		echo "mypy $$dir"; $(UV) run --frozen mypy $$dir || status=1; \
	done; exit $$status

protos:
	$(UV) run --frozen python protos/generate.py

protos-check:
	$(UV) run --frozen python protos/generate.py --check 2>/dev/null

pytest:
	$(UV) run --frozen pytest $(PYTEST_ARGS)

e2e: bootstrap
	$(UV) run --frozen pytest tests/e2e $(PYTEST_ARGS)

bench: bootstrap
	$(UV) run --frozen python -m bench

clean:
	rm -rf .venv .tools .pytest_cache .mypy_cache .ruff_cache
