# Two commands for a newcomer: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Where pip finds torch's CPU build. Empty: pip's own configuration (a local wheel of
# torch==2.13.0+cpu here). From plain PyPI on Linux x86-64 that pin is the CUDA build;
# there, give TORCH_INDEX="--index-url https://download.pytorch.org/whl/cpu".
TORCH_INDEX ?=

.PHONY: setup demo test test-kernels lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# CPU build of torch first, so that no multi-GB CUDA build is pulled in.
	$(BIN)/pip install --quiet torch==2.13.0 $(TORCH_INDEX)
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/hsad demo --out demo_output

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -rs

# The suite once per BLAS/SIMD kernel family (a stand-in for other CPUs; docs/reliability.md).
test-kernels: $(STAMP)
	scripts/test_cpu_kernels.sh

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) demo_output .pytest_cache .ruff_cache *.egg-info
