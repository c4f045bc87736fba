# dojang: `make demo` trains the main job, `make test` runs the suite, `make bench` compares
# with PyTorch, `make bench-peers` with Keras 3 on TensorFlow too. Each target makes its own
# virtual environment in .venv on first use (bench-peers also one for TensorFlow, .venv-peers).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
export OMP_NUM_THREADS ?= 2
# A short OpenBLAS spin after each GEMM: measured faster for dojang on 2 cores.
export OPENBLAS_THREAD_TIMEOUT ?= 4

.PHONY: demo test notebooks fashion-mnist bench bench-peers lint clean test-gpu bench-gpu

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

# The benchmarks run NumPy's BLAS with the kernel it picks for this CPU, as a user gets it:
# a development machine's OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are dropped for them only.
# `make bench BENCH_ARGS=--quick` is a smoke run. Results also go to build/bench/*.json.
BENCH_ENV := env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE
BENCH_ARGS ?=
bench: $(VENV)/.test
	$(BENCH_ENV) $(PY) bench/conv.py $(BENCH_ARGS)
	$(BENCH_ENV) $(PY) bench/run.py $(BENCH_ARGS)

# Keras 3 on TensorFlow as a peer: TensorFlow (about 1.6 GB installed) lives in its own
# venv, never in `make test`'s; bench/peers.py runs it in a worker process from there.
PEERS := .venv-peers
PEERS_PACKAGES := "tensorflow-cpu>=2.16; platform_machine == 'x86_64'" \
  "tensorflow>=2.16; platform_machine != 'x86_64'" "keras>=3.3" numpy threadpoolctl
$(PEERS)/.installed:
	$(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/python -m pip --disable-pip-version-check install -q --upgrade pip
	$(PEERS)/bin/python -m pip --disable-pip-version-check install -q $(PEERS_PACKAGES)
	touch $@

bench-peers: $(VENV)/.test $(PEERS)/.installed
	$(BENCH_ENV) $(PY) bench/peers.py --peer-python $(PEERS)/bin/python $(BENCH_ARGS)

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
	rm -rf $(VENV) $(PEERS) build src/*.egg-info .pytest_cache
