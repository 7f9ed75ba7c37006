# `make run` and `make test` set everything up on a fresh machine: they create .venv and install into it.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | md5sum | cut -c1-8)

.PHONY: run test lint typecheck cfn-lint unit integration e2e browser bench layer-requirements schemas clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

# Flags for `imgflow serve` pass through: `make run ARGS="--port 3001 --aws-port 4567"`.
ARGS ?=

run: $(STAMP)
	$(BIN)/imgflow serve $(ARGS)

test: $(STAMP) lint typecheck cfn-lint
	bash scripts/ensure-chromium.sh
	$(BIN)/pytest

unit: $(STAMP)
	$(BIN)/pytest tests/unit

integration: $(STAMP)
	$(BIN)/pytest tests/integration

e2e: $(STAMP)
	$(BIN)/pytest tests/e2e

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

cfn-lint: $(STAMP)
	$(BIN)/cfn-lint template.yaml

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

layer-requirements: $(STAMP)
	$(BIN)/python scripts/layer_requirements.py > layers/imgflow/requirements.txt

schemas: $(STAMP)
	$(BIN)/python -m imgflow.schemas events/schemas

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache imgflow-out
