# AFEP: `make demo` runs a job on the embedded default, `make test` runs every check.
SHELL := /bin/bash
export OMP_WAIT_POLICY := PASSIVE
export PATH := $(HOME)/.local/bin:$(PATH)
UV ?= $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
VENV := .venv
BIN := $(VENV)/bin
DEMO_OUT ?= out/demo

.PHONY: install demo test lint unit bench services clean

install: $(BIN)/afep

$(BIN)/afep: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --frozen --all-groups --compile-bytecode
	@# bytecode for our own packages too: start-up is part of every `afep` call, and with
	@# PYTHONDONTWRITEBYTECODE set (as on these machines) Python would recompile them each time
	$(BIN)/python -m compileall -q -j 0 domain commands schemas processors sandbox projections gateway ops bench >/dev/null
	@touch $(BIN)/afep

demo: install
	$(BIN)/python -m ops.demo_data $(DEMO_OUT)/credit_data.csv
	$(BIN)/afep run $(DEMO_OUT)/credit_data.csv --target Status --out $(DEMO_OUT) --budget 90 --data-dir $(DEMO_OUT)/.afep
	$(BIN)/afep jobs replay $$(python3 -c "import json;print(json.load(open('$(DEMO_OUT)/result.json'))['job_id'])") --data-dir $(DEMO_OUT)/.afep --no-traces --collapse

services:
	@bash ops/services.sh

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: install services lint
	$(BIN)/python -m pytest -q -x --timeout=600

bench: install
	$(BIN)/python -m bench.run          # AFEP vs OpenFE vs DFS -> docs/benchmarks.md (OpenFE/DFS records reused when cached)
	$(BIN)/python -m bench.scale        # afep run on 10k x 25 -> bench/results/scale.json
	$(BIN)/python -m bench.floor        # one-candidate jobs vs 1/4 of OpenFE -> bench/results/floor.json
	$(BIN)/python -m bench.api          # SSE delivery latency, API requests/s -> docs/benchmarks-api.md
	$(BIN)/python -m bench.kafka        # relay events/s, job time embedded vs Kafka runtime -> docs/benchmarks-kafka.md
	$(BIN)/python -m bench.startup $(if $(STARTUP_BASELINE),--baseline $(STARTUP_BASELINE))   # afep --help and API start-up (vs a checkout) -> docs/benchmarks-startup.md
	$(BIN)/python -m bench.run --render-only   # docs/benchmarks.md again, with the side results above

clean:
	rm -rf .afep out .pytest_cache .mypy_cache .ruff_cache
