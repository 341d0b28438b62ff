# Thin targets; everything runs from .venv, which `make` creates and keeps in
# step with pyproject.toml and constraints.txt.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.servelab-installed
LAB_PORT ?= 8888
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install system lab labs lint test test-extended test-quick grade bench lock clean binder-badge

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

install: $(STAMP)

# Debian packages the tests, the grader and the benchmarks use: bubblewrap (the grading sandbox),
# chromium (the browser tests drive it with Playwright), prometheus (beside each local cluster,
# with promtool for the course's rules) and wrk (bench/rag_hops.py checks the load generator
# against it). Installed when missing and this is root on Debian; otherwise the grader runs
# unsandboxed, the browser tests skip and clusters run without Prometheus (they say so when
# they start).
SYSTEM_PACKAGES := bwrap:bubblewrap chromium:chromium prometheus:prometheus wrk:wrk
system:
	@missing="$$(for p in $(SYSTEM_PACKAGES); do command -v $${p%%:*} >/dev/null || echo $${p#*:}; done)"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages: $$missing"; \
	    apt-get install -y -q $$missing >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null && apt-get install -y -q $$missing >/dev/null; }; \
	  else echo "note: missing Debian packages $$missing: grading is not sandboxed, browser tests skip"; fi; fi

# Student versions of the graded labs, generated from grading/source.
labs: $(STAMP)
	$(BIN)/servelab labs generate

# The README's Binder badge, from the GitHub remote (binder/badge.py; REMOTE=... REF=... to choose).
binder-badge:
	$(PYTHON) binder/badge.py $(if $(REMOTE),--remote $(REMOTE),) $(if $(REF),--ref $(REF),)

# JupyterLab on the course's start page, local target (no Kubernetes needed);
# SERVELAB_TARGET=kubernetes points the labs at the cluster of the current kubeconfig context.
# Learners see nbgrader's learner tools only (jupyter/learner); ROLE=instructor leaves that
# configuration out (formgrader and Create Assignment show).
lab: labs
	SERVELAB_TARGET=$(or $(SERVELAB_TARGET),local) \
	JUPYTER_CONFIG_PATH=$(if $(filter instructor,$(ROLE)),,$(CURDIR)/jupyter/learner$(if $(JUPYTER_CONFIG_PATH),:$(JUPYTER_CONFIG_PATH))) \
	$(BIN)/jupyter lab \
	  --ServerApp.ip=127.0.0.1 --ServerApp.port=$(LAB_PORT) \
	  --LabApp.default_url=/lab/tree/notebooks/00-start-here.ipynb \
	  $(if $(NO_BROWSER),--no-browser,) \
	  $(if $(filter 0,$(shell id -u)),--allow-root,)

# The whole suite: unit tests, live Ray, nbval on the lessons, nbgrader round trips.
# TEST_WORKERS=N runs N test files at a time (pytest-xdist; a notebook's cells share a
# kernel, a module its cluster). Keep 1 on 2 cores: concurrent clusters starve each other.
TEST_WORKERS ?= 1
test: $(STAMP) system lint
	$(BIN)/python -m pytest -m "not extended" $(if $(filter-out 1,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile,) --durations=25 $(PYTEST_ARGS)

# ruff, configured in pyproject.toml (make test runs it first).
lint: $(STAMP)
	$(BIN)/ruff check .

# Partial-credit round trips of labs 5-7 (a full graded run of the lab each): not in CI's time.
test-extended: $(STAMP) system
	$(BIN)/python -m pytest -m extended $(PYTEST_ARGS)

# Unit tests only: no Ray cluster started, no notebook graded by nbgrader.
test-quick: $(STAMP)
	$(BIN)/python -m pytest -m "not live and not grading" $(PYTEST_ARGS)

# Autograde every submission of LAB in an nbgrader course folder (default grading/):
# make grade LAB=lab2-rag-pipeline [COURSE=path] [FORCE=1]
grade: $(STAMP) system
	@test -n "$(LAB)" || { echo "usage: make grade LAB=<lab> [COURSE=folder] [FORCE=1]"; exit 2; }
	$(BIN)/servelab grade $(LAB) --course $(or $(COURSE),grading) $(if $(FORCE),--force,)

bench: $(STAMP) system
	$(BIN)/python bench/run.py

# Re-pin every dependency after changing pyproject.toml (review the diff).
lock: $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^servelab' > constraints.txt
	{ echo "# Generated from ../constraints.txt by \`make lock\`: Binder installs exactly the pins"; \
	  echo "# that \`make install\` does (a test fails if the two differ)."; cat constraints.txt; } > binder/requirements.txt

clean:
	rm -rf $(VENV) .pytest_cache
