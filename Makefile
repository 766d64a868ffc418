# The README's two commands: `make demo` and `make test`. Both create or reuse .venv.
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.cpuai-installed
TORCH   := torch==2.13.0

.PHONY: setup test test-fast demo lint clean

setup: $(STAMP)

# Reinstall only when the dependency list changes; torch's CPU build goes first so that
# nothing later resolves torch to a CUDA wheel.
$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null 2>&1 || { echo "error: $(PY) not found; install Python 3.11 or run 'make PY=python3 ...'"; exit 2; }
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[all,tf,dev]" "$(TORCH)"
	@touch $(STAMP)

test: setup
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

demo: setup
	$(BIN)/cpuai demo

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy src

clean:
	rm -rf $(VENV) .pytest_cache build src/*.egg-info
