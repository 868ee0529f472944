# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
# `make run PORT=8001 HOST=0.0.0.0`: where the demo listens. Plain `=`, not `?=`:
# shells and platforms often export HOST or PORT, and the demo must not follow them.
PORT = 8000
HOST = 127.0.0.1
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck pytest bench clean

# Re-install only when pyproject.toml changes; the stamp makes this idempotent.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/identity-service demo --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check identity_service tests bench wsgi.py
	$(BIN)/ruff format --check identity_service tests bench wsgi.py

typecheck: $(STAMP)
	$(BIN)/mypy --strict identity_service

pytest: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python bench/mint_cost.py

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
