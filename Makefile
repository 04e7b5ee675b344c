# Two commands set everything up on a fresh machine: `make demo`, then `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# The CPU wheel that lies on this machine's disk; on a CUDA machine set TORCH_SPEC= (empty)
# to keep whatever torch the environment provides.
TORCH_SPEC ?= torch==2.13.0
FACENET_SPEC := facenet-pytorch==2.6.0
SHARED_DATA := $(abspath ../shared/data)
export SYNFACE_DATA ?= $(if $(wildcard $(SHARED_DATA)),$(SHARED_DATA),)
# torch's spinning OpenMP threads starve other work on 2 cores.
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: install demo test bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	# Headless OpenGL for the face renderer: EGL + Mesa llvmpipe (CPU) when not present.
	if ! ldconfig -p | grep -q libEGL_mesa; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libegl1 libegl-mesa0 libgl1-mesa-dri >/dev/null; fi
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	if [ -n "$(TORCH_SPEC)" ]; then $(PIP) install -q "$(TORCH_SPEC)"; fi
	$(PIP) install -q -e ".[test,judge,onnx,tensorboard,ray]"
	# MTCNN weights ship as data files in this wheel; its own code (old torch, torchvision) is never used.
	$(PIP) install -q --no-deps "$(FACENET_SPEC)"
	touch $@

# generate a small identity-mixup set -> train the cpu preset -> evaluate LFW -> runs/demo/report.md
demo: install
	$(VENV)/bin/synface demo --out runs/demo --data data/demo

# Test processes (pytest-xdist): two keep both cores busy while one test waits on the renderer,
# a subprocess or Python; tests/conftest.py gives each its share of torch's threads. Tests of
# one module stay in one process (their module fixtures are built once). TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2

test: install
	@# the slowest tests named in every run, so a creeping suite shows in CI logs
	$(PY) -m pytest -q $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadscope) --durations=15

bench: install
	$(PY) benchmarks/evaluate_lfw.py --json runs/bench/evaluate_lfw.json
	$(PY) benchmarks/generate_throughput.py --json runs/bench/generate_throughput.json
	$(PY) benchmarks/generator_realism.py --json runs/bench/generator_realism.json
	$(PY) benchmarks/loader_throughput.py --json runs/bench/loader_throughput.json
	$(PY) benchmarks/train_throughput.py --json runs/bench/train_throughput.json
	$(PY) benchmarks/fp32_train_levers.py --json runs/bench/fp32_train_levers.json
	@# the Trainer itself, on the demo's dataset once `make demo` has made it
	if [ -f data/demo/dataset.json ]; then $(PY) benchmarks/trainer_batch_norm.py --data data/demo --json runs/bench/trainer_batch_norm.json; fi
	$(PY) benchmarks/learning_check.py --json runs/bench/learning_check.json

clean:
	rm -rf $(VENV) cache runs data
