# imgrec: two commands do all set-up.
#   make lab    create .venv, install, start JupyterLab on lessons/
#   make test   create .venv, install, run the whole suite
# Other targets: make train, make help.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# nbgrader runs `alembic` as a program: the venv's bin/ must be on PATH.
export PATH := $(abspath $(BIN)):$(PATH)
STAMP  := $(VENV)/.installed
EXTRAS := lab,test,book
# Jupyter refuses to run as root unless told to.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: help install lab test test-lib train lessons execute bench kernel constraints clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# The venv is (re)built only when pyproject.toml or constraints.txt change; a second `make`
# finds the stamp newer than both and starts at once.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -qq --upgrade "pip>=23"
	$(BIN)/python -m pip install -qq -c constraints.txt -e ".[$(EXTRAS)]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (imgrec)" >/dev/null
	@touch $(STAMP)

install: $(STAMP)  ## create .venv and install the course (idempotent)

bench: $(STAMP)  ## benchmark: time to accuracy, throughput, conv, inference, notebooks -> JSON + benchmarks/RESULTS.md
	$(BIN)/python benchmarks/bench.py

kernel: $(STAMP)  ## also register the kernel for a Jupyter or VS Code outside .venv
	$(BIN)/python -m ipykernel install --user --name imgrec --display-name "Python (imgrec)"

lab: $(STAMP)  ## start JupyterLab on the lessons
	$(BIN)/jupyter lab --notebook-dir=lessons $(ROOT_FLAG)

# nbval re-runs every solution notebook and compares the cells marked # NBVAL_CHECK_OUTPUT.
NBVAL := --nbval-lax --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg

test: $(STAMP)  ## run the whole test suite: library, notebooks (nbval), nbgrader pipeline
	$(BIN)/python -m pytest tests solutions $(NBVAL)

test-lib: $(STAMP)  ## only the library tests (fast)
	$(BIN)/python -m pytest tests -m "not slow"

train: $(STAMP)  ## train the course CNN on the embedded digits, save checkpoints/course_cnn.pt (FAST=1: the fast path)
	$(BIN)/python -m imgrec_lib train --data digits --checkpoint checkpoints/course_cnn.pt $(if $(FAST),--fast,)

constraints: $(STAMP)  ## re-pin constraints.txt to what .venv has now (after a tested upgrade)
	{ sed -n '1,2p' constraints.txt; $(BIN)/python -m pip freeze --exclude-editable | grep -v '^imgrec'; } > constraints.new
	mv constraints.new constraints.txt

lessons: $(STAMP)  ## regenerate lessons/ (student notebooks) from solutions/ with nbgrader
	$(BIN)/nbgrader generate_assignment "*" --force --log-level=WARN

execute: $(STAMP)  ## re-execute every solution notebook in place, storing outputs (then: make lessons)
	for nb in solutions/*/*.ipynb; do \
	  $(BIN)/jupyter nbconvert --to notebook --execute --inplace \
	    --ExecutePreprocessor.store_widget_state=True --ExecutePreprocessor.timeout=600 "$$nb" || exit 1; done

clean:  ## remove the venv and run-time files
	rm -rf $(VENV) .pytest_cache .hypothesis checkpoints
