# pmexp tasks. On a fresh machine: `make train` (installs, then fine-tunes pretrained MiniLM on MRPC) and
# `make test`. Extra arguments go through ARGS, e.g. `make train ARGS="trainer.epochs=1 logger=none"`.
#
# TORCH is installed before the project: `torch==2.13.0` takes the CPU build lying on disk on the
# project's machines (an unpinned torch would pull a multi-GB CUDA build). On a machine whose torch
# is already installed system-wide, reuse it: `make install TORCH= VENV_FLAGS=--system-site-packages`.

VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0
VENV_FLAGS ?=
EXTRAS ?= test,lint,gpu,sweep
EXPERIMENT ?= fidelity
SWEEP ?= multirun/$(EXPERIMENT)
ARGS ?=

.PHONY: install train test lint bench sweep report sync dashboard clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV_FLAGS) $(VENV)
	$(if $(TORCH),$(PY) -m pip install -q "$(TORCH)")
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	touch $@

train: install  ## fine-tune (default: pretrained MiniLM on MRPC, CPU or GPU; W&B offline)
	$(PY) -m pmexp.train $(ARGS)

test: install  ## the whole test suite (GPU tests skip without CUDA)
	$(PY) -m pytest -q $(ARGS)

lint: install
	$(PY) -m ruff check pmexp tests

bench: install  ## GPU micro-benchmark of the dropout variants
	$(PY) -m pmexp.bench dropout $(ARGS)

sweep: install  ## a campaign preset: make sweep EXPERIMENT=memory_scaling (re-run resumes)
	$(PY) -m pmexp.train -m experiment=$(EXPERIMENT) hydra.sweep.dir=$(SWEEP) $(ARGS)

report: install  ## tables and plots of a sweep: make report SWEEP=multirun/fidelity
	$(PY) -m pmexp.report $(SWEEP) $(ARGS)

sync: install  ## push offline W&B runs: make sync (multirun/ and outputs/) or make sync DIRS=multirun/fidelity
	$(PY) -m pmexp.sync $(or $(DIRS),$(wildcard multirun outputs),multirun) $(ARGS)

dashboard: install  ## W&B workspace + report of a sweep: make dashboard PROJECT=pmexp SWEEP=multirun/fidelity
	$(PY) -m pmexp.dashboard --project $(or $(PROJECT),pmexp) --sweep $(SWEEP) $(ARGS)

clean:
	rm -rf outputs multirun .pytest_cache
