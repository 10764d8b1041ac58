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
EXTRAS := lab,test,book,hub
# Jupyter refuses to run as root unless told to.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: help install venv nbconvert-fix lab test test-lib train lessons execute bench kernel constraints clean autograde check feedback book browser sandbox hub owner-first hub-proxy nbval

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# The venv is (re)built only when pyproject.toml or constraints.txt change; a second `make`
# finds the stamp newer than both and starts at once. A .venv that links to another checkout's venv
# is used as it is: installing this course into it would re-point that checkout's imgrec_lib here.
$(STAMP): pyproject.toml constraints.txt
	@if [ -L $(VENV) ]; then echo "$(VENV) links to $$(readlink -f $(VENV)): using it as it is" \
	  "(make install in the checkout it belongs to updates it)"; else $(MAKE) --no-print-directory venv; fi

venv:
	@test -x $(BIN)/python || $(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11, 5))' || { \
	  echo "$(PYTHON) is Python $$($(PYTHON) -c 'import platform; print(platform.python_version())'); the course needs 3.11.5 or newer:" \
	    "install one (conda env create -f environment.yml, or uv python install 3.11; for a class, in /opt: docs/INSTRUCTOR_GUIDE.md)" \
	    "and run make PYTHON=/path/to/that/python3" >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -qq --upgrade "pip>=23"
	$(BIN)/python -m pip install -qq --no-compile -c constraints.txt -e ".[$(EXTRAS)]"
	@# pip would compile every module on one core; compileall uses them all. The .pyc files must be
	@# there: grading sandboxes cannot write them. (A few packages ship files that do not compile,
	@# e.g. templates; pip skips those too.)
	@$(BIN)/python -m compileall -qq -j 0 $(VENV)/lib || true
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (imgrec)" >/dev/null
	@$(MAKE) --no-print-directory nbconvert-fix
	@touch $(STAMP)

# A plain `jupyter nbconvert --execute` in this venv (as a learner runs it) gets the fix for a
# headless run that stalls after a widget cell: Jupyter reads config files in sys.prefix/etc/jupyter.
NBCONVERT_FIX := $(VENV)/etc/jupyter/jupyter_nbconvert_config.py
nbconvert-fix:
	@mkdir -p $(dir $(NBCONVERT_FIX))
	@printf '%s\n' '# Written by make install: headless runs must not stall after a widget cell (grading/jupyter_fix.py).' \
	  'import sys' 'sys.path.insert(0, "$(abspath .)")' 'try:' '    from grading import jupyter_fix' \
	  'except ImportError:  # the course folder moved: run make install again' '    pass' 'else:' \
	  '    jupyter_fix.apply()' > $(NBCONVERT_FIX)

install: $(STAMP)  ## create .venv and install the course (idempotent)

bench: $(STAMP)  ## benchmark: time to accuracy, throughput, conv, inference, notebooks -> JSON + benchmarks/RESULTS.md
	$(BIN)/python benchmarks/bench.py

kernel: $(STAMP)  ## also register the kernel for a Jupyter or VS Code outside .venv
	$(BIN)/python -m ipykernel install --user --name imgrec --display-name "Python (imgrec)"

lab: $(STAMP)  ## start JupyterLab on the lessons
	$(BIN)/jupyter lab --notebook-dir=lessons $(ROOT_FLAG)

# Two pytest workers (pytest-xdist), each taking whole files (--dist loadfile: a file's fixtures
# stay in one process), the slowest files first (tests/conftest.py, --no-loadscope-reorder): the
# suite waits on kernels, sandboxes and browsers about half of the time. Each solved notebook runs
# once, graded in test_lessons, which also checks the cells marked # NBVAL_CHECK_OUTPUT.
test: $(STAMP) book browser sandbox hub-proxy  ## run the whole test suite: library, notebooks, nbgrader pipeline, website, browser checks
	$(BIN)/python -m pytest tests -n 2 --dist loadfile --no-loadscope-reorder --durations=40

# nbval re-runs solution notebooks in a plain kernel and compares the cells marked # NBVAL_CHECK_OUTPUT:
# `make nbval` for all, `make nbval LESSON=07` for one (make test checks the same outputs in test_lessons).
NBVAL := --nbval-lax --nbval-cell-timeout=600 --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg
nbval: $(STAMP)  ## re-run the solution notebooks with nbval (LESSON=07: one lesson)
	$(BIN)/python -m pytest $(NBVAL) solutions/$(if $(LESSON),$(LESSON)*,)

# The library's own tests: not the notebooks, the nbgrader pipeline, the book or the browser.
PIPELINE_TESTS := test_lessons test_autograde test_hostile test_make_targets test_book test_browser test_browser_grading test_hub
test-lib: $(STAMP)  ## only the library tests (a few minutes)
	$(BIN)/python -m pytest tests -m "not slow" $(foreach t,$(PIPELINE_TESTS),--ignore=tests/$(t).py)

# The course website (book/): lesson pages from the outputs stored in solutions/ (nothing is
# executed), MathJax from npm so math renders offline, warnings are errors. Output: book/_build/html.
MATHJAX := book/node_modules/mathjax/package.json
$(MATHJAX): book/package.json book/package-lock.json
	cd book && npm ci --no-audit --no-fund --loglevel=error
	@touch $(MATHJAX)

book: $(STAMP) $(MATHJAX)  ## build the course website into book/_build/html (offline, in seconds)
	$(BIN)/python book/build_pages.py
	$(BIN)/jupyter-book build book --warningiserror --keep-going --quiet

# A JupyterHub for a class on this machine (hub/, docs/INSTRUCTOR_GUIDE.md): runs as root, starts
# each person's JupyterLab as their Unix account. Its proxy, configurable-http-proxy, from npm.
CHP := hub/node_modules/configurable-http-proxy/package.json
$(CHP): hub/package.json hub/package-lock.json
	cd hub && npm ci --no-audit --no-fund --loglevel=error
	@touch $(CHP)

hub-proxy: $(CHP)  ## install JupyterHub's proxy (configurable-http-proxy, npm) into hub/node_modules

# `sudo make hub` or `sudo make autograde` in a course an instructor owns must not build .venv or
# hub/node_modules as root: they would be root's, and the owner could no longer update them.
OWNER_BUILDS = $(STAMP)
hub: OWNER_BUILDS = $(STAMP) $(CHP)
owner-first:
	@if [ "$$(id -u)" = 0 ] && [ "$$(stat -c %u .)" != 0 ] && ! $(MAKE) -s -q $(OWNER_BUILDS) 2>/dev/null; then \
	  echo "this course folder is $$(stat -c %U .)'s: run make install$(if $(findstring $(CHP),$(OWNER_BUILDS)), and make hub-proxy,) as $$(stat -c %U .) first, then sudo make $(MAKECMDGOALS) (docs/INSTRUCTOR_GUIDE.md)" >&2; \
	  exit 1; fi

hub: owner-first $(STAMP) $(CHP)  ## serve the course to a class with JupyterHub (sudo make hub; accounts in hub/roster.txt)
	$(BIN)/python hub/prepare.py
	$(BIN)/jupyterhub -f hub/jupyterhub_config.py

# Headless Chromium for the browser tests, from Debian's packages (never Playwright's download).
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
browser:  ## install Debian's chromium for the browser tests, unless /usr/bin/chromium exists
	@test -x /usr/bin/chromium || { $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# Grading runs each submission in a bubblewrap sandbox (Debian's package; docs/INSTRUCTOR_GUIDE.md).
sandbox:  ## install bubblewrap for sandboxed grading, unless bwrap is there
	@command -v bwrap >/dev/null || { $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap; }

train: $(STAMP)  ## train the course CNN on the embedded digits, (re)place checkpoints/course_cnn.pt (FAST=1: the fast path)
	$(BIN)/python -m imgrec_lib train --data digits --checkpoint checkpoints/course_cnn.pt --force $(if $(FAST),--fast,)

constraints: $(STAMP)  ## re-pin constraints.txt to what .venv has now (after a tested upgrade)
	{ sed -n '1,2p' constraints.txt; $(BIN)/python -m pip freeze --exclude-editable | grep -v '^imgrec'; } > constraints.new
	mv constraints.new constraints.txt

lessons: $(STAMP)  ## regenerate lessons/ from solutions/ (a notebook with your answers is kept; the new one goes beside it)
	$(BIN)/python scripts/make_lessons.py

# Instructors (docs/INSTRUCTOR_GUIDE.md). FORCE=1 re-grades / re-makes what was done before;
# WORKERS=N sandboxes at a time (default: the number of cores).
autograde: owner-first $(STAMP) sandbox  ## grade everything under submitted/ in sandboxes, export grades.csv (FORCE=1: all again)
	$(BIN)/python -m grading autograde $(if $(FORCE),--force) $(if $(WORKERS),--workers $(WORKERS))

# Learners: grade copies of your notebooks in lessons/ in sandboxes, as `make autograde` does, with the
# reference tests published in solutions/ (hidden ones included; your instructor's own may differ).
check: $(STAMP) sandbox  ## score your lessons/ notebooks per exercise, feedback in checked/ (LESSON=01_convolution: one)
	$(BIN)/python -m grading check $(LESSON)

feedback: $(STAMP)  ## HTML feedback for every autograded submission, in feedback/ (FORCE=1: all again)
	$(BIN)/nbgrader generate_feedback "*" $(if $(FORCE),--force)

execute: $(STAMP)  ## re-execute every solution notebook in place, storing outputs (then: make lessons)
	for nb in solutions/*/*.ipynb; do \
	  $(BIN)/jupyter nbconvert --config scripts/nbconvert_config.py --to notebook --execute --inplace "$$nb" \
	  || exit 1; done

clean:  ## remove the venv, the book's build and npm packages, and caches (not checkpoints, submissions, grades or lessons/)
	rm -rf $(VENV) .pytest_cache .hypothesis checked book/_build book/node_modules \
	  book/lessons book/guides book/reference book/course_map.md tests/screenshots benchmarks/results.json \
	  hub/node_modules
