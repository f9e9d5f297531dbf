# Quick start: `make demo` (the whole study on the embedded world) and `make test` (the test suite).
# Both create/refresh .venv/ in the repo root; re-running is cheap (the install step re-runs only
# when pyproject.toml changes).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The CPU build of torch that these machines carry; elsewhere set TORCH_SPEC to the build you want.
TORCH_SPEC ?= torch==2.13.0
STAMP  := $(VENV)/.sicl-installed

.PHONY: demo test test-all lint venv clean-venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "sicl needs Python >= 3.11, found " + sys.version.split()[0])'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev,train,parquet]"
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/sicl demo --out runs/demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m "slow or not slow"

lint: $(STAMP)
	$(BIN)/ruff check sicl tests bench

clean-venv:
	rm -rf $(VENV)
