# dojang: `make demo` trains the main job, `make test` runs the suite, `make bench` compares
# with PyTorch. Each target makes its own virtual environment in .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
export OMP_NUM_THREADS ?= 2
# A short OpenBLAS spin after each GEMM: measured faster for dojang on 2 cores.
export OPENBLAS_THREAD_TIMEOUT ?= 4

.PHONY: demo test notebooks fashion-mnist bench lint clean test-gpu bench-gpu

$(VENV)/.base:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	touch $@

$(VENV)/.demo: $(VENV)/.base pyproject.toml
	$(PIP) install -q -e ".[all]"
	touch $@

$(VENV)/.test: $(VENV)/.base pyproject.toml
	$(PIP) install -q -e ".[test]"
	touch $@

$(VENV)/.notebooks: $(VENV)/.base pyproject.toml
	$(PIP) install -q -e ".[notebooks]"
	touch $@

# Fashion-MNIST: the Debian package when apt-get may be used, else dojang downloads it (and
# the notebooks' fast mode falls back to scikit-learn's digits).
fashion-mnist:
	@test -d /usr/share/datasets/fashion-mnist || { command -v apt-get >/dev/null && \
	  [ "$$(id -u)" = 0 ] && { apt-get install -y -q dataset-fashion-mnist || \
	  { apt-get update -q && apt-get install -y -q dataset-fashion-mnist; }; }; } || \
	  echo "dataset-fashion-mnist not installed; dojang will look elsewhere or download"

demo: $(VENV)/.demo fashion-mnist
	$(PY) -m dojang.demo

test: $(VENV)/.test fashion-mnist
	$(PY) -m pytest

# Executed HTML copies of notebooks/ in build/notebooks/ (DOJANG_NOTEBOOK_FAST=1: a quick run).
notebooks: $(VENV)/.notebooks fashion-mnist
	JUPYTER_PREFER_ENV_PATH=1 $(PY) -m jupyter nbconvert --to html --execute \
	  --output-dir build/notebooks notebooks/0*.ipynb

bench: $(VENV)/.test
	$(PY) bench/conv.py
	$(PY) bench/run.py

# On a machine with an NVIDIA GPU and CuPy (no venv: that machine's own python3, nothing
# installed): the oracle suite on CuPy arrays, then the GPU benchmark.
GPU_PYTHON ?= python3
test-gpu:
	DOJANG_TEST_DEVICE=gpu PYTHONPATH=src $(GPU_PYTHON) -m pytest -q -p no:cacheprovider tests

bench-gpu:
	PYTHONPATH=src $(GPU_PYTHON) bench/gpu.py

lint: $(VENV)/.test
	$(PY) -m ruff check src tests bench tools notebooks

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
