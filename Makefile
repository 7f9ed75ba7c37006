# `make run` and `make test` set everything up on a fresh machine: they create .venv and install into it.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | md5sum | cut -c1-8)

.PHONY: run test fuzz types js-check localstack-venv lint typecheck cfn-lint sam-validate unit integration e2e browser bench lock package build schemas clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

# SAM CLI lives in a venv of its own: its pins conflict with the project's.
SAM_CLI := aws-sam-cli>=1.140,<2
SAM_VENV := .venv-sam
SAM := SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam
SAM_STAMP := $(SAM_VENV)/.installed-$(shell echo '$(SAM_CLI)' | md5sum | cut -c1-8)
# sam build runs the functions' runtime (python3.13) to build them without Docker: the one on PATH, else pyenv's.
PYTHON313_DIR = $(shell python3.13 -c 'import os, sys; print(os.path.dirname(sys.executable))' 2>/dev/null \
	|| echo "$$(pyenv prefix 3.13 2>/dev/null)/bin")

# No compiling of every module it installs (--no-compile): `sam validate` imports a fraction of them, compiled
# on first use. 23 s of CPU -> 8 s for the install, ~3 s more for the first validate.
$(SAM_STAMP):
	test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --no-compile '$(SAM_CLI)'
	rm -f $(SAM_VENV)/.installed-* && touch $@

# Flags for `imgflow serve` pass through: `make run ARGS="--port 3001 --aws-port 4567"`.
ARGS ?=

run: $(STAMP)
	$(BIN)/imgflow serve $(ARGS)

test: $(STAMP) lint typecheck cfn-lint sam-validate js-check localstack-venv
	bash scripts/ensure-chromium.sh
	$(BIN)/pytest -n auto --dist loadfile --durations=30

# The property-based targets (tests/fuzz) searched far longer than `make test` replays them (40 seeded
# examples each): FUZZ_EXAMPLES per target, about 90 s here at the default. A failing example is kept in
# tests/fuzz/examples, which `make test` then replays until it is fixed.
FUZZ_EXAMPLES ?= 10000
fuzz: $(STAMP)
	IMGFLOW_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) timeout 900 $(BIN)/pytest -q -p no:cacheprovider tests/fuzz

# LocalStack in host mode for the `localstack` test (Python >= 3.12; without one the test skips).
localstack-venv:
	bash scripts/localstack-venv.sh

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

# Offline once SAM CLI is installed: the SAM transform and cfn-lint, as `sam deploy` will see the template.
sam-validate: $(SAM_STAMP)
	$(SAM) validate --lint --template template.yaml

# The contenders (pyvips with its own libvips), numpy for PSNR and matplotlib for the chart: `.[bench]`.
BENCH_STAMP := $(VENV)/.bench-$(shell cat pyproject.toml | md5sum | cut -c1-8)

# Only what the benchmark imports, so a clean clone measures within minutes of `make bench`.
$(BENCH_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	rm -f $(VENV)/.bench-* && touch $@

# `make bench ARGS=--details` adds the per-stage figures (benchmarks/details.py).
bench: $(BENCH_STAMP)
	$(BIN)/python benchmarks/run.py $(ARGS)

# Each Lambda artifact's requirements.txt, a hashed lock for arm64 Linux and Python 3.13, from pyproject.toml.
lock: $(STAMP)
	$(BIN)/python scripts/layer_requirements.py

# One zip per layer and function under build/, without SAM, compiled by python3.13; fails past Lambda's limits.
package: $(STAMP)
	$(BIN)/python scripts/package.py

# sam build for arm64 on any machine, without Docker (every dependency is a locked arm64 wheel); then its
# output finished as `make package` finishes its zips: botocore's models pruned to the services the
# functions call, everything compiled to bytecode (SAM's python builder ships no .pyc).
build: $(SAM_STAMP) $(STAMP)
	PATH="$(PYTHON313_DIR):$$PATH" $(SAM) build
	$(BIN)/python scripts/package.py --finish-sam-build .aws-sam/build

# Measured limits (README, "Measured limits"): each function's cold start in fresh processes (import, then
# first call), as `make package` builds it and python3.13 runs it; `ARGS="api ingest --baseline /tmp/old-tree"`
# compares with another checkout in the same run.
.PHONY: bench-cold
bench-cold: $(STAMP)
	$(BIN)/python benchmarks/cold_start.py $(ARGS)

# `imgflow process` of one small image, start and stop included (README, Performance); `ARGS="--baseline
# /tmp/old-tree"` alternates with another checkout.
.PHONY: bench-process
bench-process: $(STAMP)
	$(BIN)/python benchmarks/process_once.py $(ARGS)

# The local runtime under load, over HTTP (benchmarks/load.py; ~10 min here): 12 MP uploads one at a time,
# 200 uploads from 8 clients, GET /jobs/{id} at 100/s open loop, AWS requests per upload.
.PHONY: load
load: $(STAMP)
	$(BIN)/python benchmarks/load.py $(ARGS)

# The cost model (README, Deploy): per upload and at two rates, from load-results.json and the template.
.PHONY: cost
cost: $(STAMP)
	$(BIN)/python benchmarks/cost.py $(ARGS)

schemas: $(STAMP)
	$(BIN)/python -m imgflow.schemas events/schemas

# The browser client's TypeScript types, from the API's OpenAPI document (a unit test keeps them in step).
types: $(STAMP)
	$(BIN)/python scripts/openapi_types.py

# tsc (from the npm registry, into .node-tools) type-checks the types and an example that uses the client.
JS_TOOLS := .node-tools
js-check:
	test -x $(JS_TOOLS)/node_modules/.bin/tsc || npm install --silent --no-audit --no-fund --prefix $(JS_TOOLS) typescript@5
	$(JS_TOOLS)/node_modules/.bin/tsc --noEmit --strict --lib es2022,dom clients/js/example.ts clients/js/imgflow.d.ts

clean:
	rm -rf $(VENV) $(SAM_VENV) $(JS_TOOLS) .pytest_cache .mypy_cache .ruff_cache imgflow-out build .aws-sam
