# frontierkit: `make demo` runs the tour on embedded data; `make test` runs the test suite.
# Both create .venv if absent, install only what is missing (stamp files), and pin torch to the
# CPU wheel via constraints/cpu.txt so a machine without a GPU never pulls a CUDA build.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install -q --disable-pip-version-check -c constraints/cpu.txt
CACHE := $(CURDIR)/.cache

# keep every cache inside the repo's ignored .cache/ folder
export FRONTIERKIT_CACHE := $(CACHE)/frontierkit
export HF_HOME := $(CACHE)/hf
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export MPLCONFIGDIR := $(CACHE)/matplotlib
export MPLBACKEND := Agg
export TORCHINDUCTOR_CACHE_DIR := $(CACHE)/inductor
export TORCH_EXTENSIONS_DIR := $(CACHE)/torch_extensions
export TRITON_CACHE_DIR := $(CACHE)/triton
export WANDB_MODE := offline
export WANDB_DIR := $(CACHE)/wandb
export WANDB_CACHE_DIR := $(CACHE)/wandb
export WANDB_CONFIG_DIR := $(CACHE)/wandb
export WANDB_SILENT := true
export DS_ACCELERATOR := cpu
export XDG_CACHE_HOME := $(CACHE)/xdg
export MUJOCO_GL := egl
export TOKENIZERS_PARALLELISM := false

.PHONY: demo demo-quick test test-fast test-cpus install install-dev flower-venv clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(VENV)/.stamp-base: pyproject.toml constraints/cpu.txt | $(BIN)/python
	$(PIP) torch==2.13.0 -e '.[track,rl,serve]'
	@touch $@

$(VENV)/.stamp-dev: pyproject.toml constraints/cpu.txt $(VENV)/.stamp-base
	$(PIP) torch==2.13.0 -e '.[dev]'
	$(PIP) --no-deps torchattacks==3.5.1  # oracle; its torchvision dependency must never be installed (CUDA-only wheel)
	@touch $@

install: $(VENV)/.stamp-base
install-dev: $(VENV)/.stamp-dev

# Flower (flwr) pins older protobuf/fastapi than the rest of the kit: it gets its own environment,
# used by `frontier privacy federated --transport flower` and its test (tests/privacy/test_privacy_flower.py).
FLWR_VENV := .venv-flwr
$(FLWR_VENV)/.stamp: pyproject.toml constraints/cpu.txt
	$(PY) -m venv $(FLWR_VENV)
	$(FLWR_VENV)/bin/pip install -q --disable-pip-version-check -c constraints/cpu.txt torch==2.13.0 -e '.[flower]'
	@touch $@
flower-venv: $(FLWR_VENV)/.stamp

demo: $(VENV)/.stamp-base
	$(BIN)/frontier tour --out runs/tour

demo-quick: $(VENV)/.stamp-base
	$(BIN)/frontier tour --quick --out runs/tour-quick

test: $(VENV)/.stamp-dev $(FLWR_VENV)/.stamp
	$(BIN)/python -m pytest

test-fast: $(VENV)/.stamp-dev
	$(BIN)/python -m pytest -m "not slow"

# The tests marked `learned` (learned thresholds, golden curves) once per set of torch CPU kernels:
# ATEN_CPU_CAPABILITY=default (no vector units), avx2, and native (unset; avx2 is skipped on a CPU
# without it). Float results differ in the last bits between CPUs; these tests must hold on all.
test-cpus: $(VENV)/.stamp-dev
	@native=$$(env -u ATEN_CPU_CAPABILITY $(BIN)/python -c "import torch; print(torch.backends.cpu.get_cpu_capability())"); \
	caps="default native"; case "$$native" in AVX2|AVX512*) caps="default avx2 native";; esac; \
	failed=""; for cap in $$caps; do \
	  echo "== ATEN_CPU_CAPABILITY=$$cap (native: $$native)"; \
	  if [ "$$cap" = native ]; then env -u ATEN_CPU_CAPABILITY $(BIN)/python -m pytest -m learned || failed="$$failed $$cap"; \
	  else env ATEN_CPU_CAPABILITY=$$cap $(BIN)/python -m pytest -m learned || failed="$$failed $$cap"; fi; \
	done; \
	if [ -n "$$failed" ]; then echo "test-cpus: failed under ATEN_CPU_CAPABILITY:$$failed"; exit 1; fi

clean:
	rm -rf runs .cache .pytest_cache $(FLWR_VENV)
