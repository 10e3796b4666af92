# ffn-workbook: `make demo` runs the whole workbook headless, `make test` runs the tests.
# Both create .venv and install the pinned requirements when needed.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
RUN ?= runs/demo
# pytest-xdist: the unit tests in up to 4 processes; the tests of one file stay in one process, so a
# module's fixtures (a reference training run) are built once.
PARALLEL ?= -n auto --maxprocesses 4 --dist loadfile

BROWSER_STAMP := $(VENV)/.installed-browser
BROWSER_ARTIFACTS ?= scratch/browser
CHROMIUM ?= $(shell command -v chromium || command -v chromium-browser)

.PHONY: help setup demo study test test-unit test-notebooks test-browser lab clean-notebooks bench

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)  ## create .venv with the pinned requirements and ffnlib (editable)

demo: $(STAMP)  ## the main job: notebooks 01..09 headless on the built-in data, into runs/demo
	$(PY) -m ffnlib.workbook reproduce --profile demo --out $(RUN)

study: $(STAMP)  ## the built-in study, part 2: a harder task, every model of Tables 1 and 4 (about 45 min a seed; SEED=1 -> runs/study_seed1)
	$(PY) -m ffnlib.workbook reproduce --profile study $(if $(SEED),--out runs/study_seed$(SEED) --set seed=$(SEED),)

test: $(STAMP)  ## every unit test, then every notebook under nbval in smoke mode
	$(PY) -m pytest tests $(PARALLEL)
	$(MAKE) --no-print-directory test-notebooks

test-unit: $(STAMP)  ## the fast lane: unit tests but the slow ones (training in subprocesses, torch.compile, notebooks)
	$(PY) -m pytest tests -m "not slow" $(PARALLEL)

# Notebooks share one fresh run folder (04 and 07 train what 05 and 08 read), never runs/ itself.
test-notebooks: $(STAMP)  ## nbval over the notebooks in smoke mode (FFN_SMOKE=1, about a minute each at most)
	runs_dir=$$(mktemp -d) && trap 'rm -rf "$$runs_dir"' EXIT && \
	FFN_SMOKE=1 FFN_RUNS_DIR="$$runs_dir" $(PY) -m pytest --nbval-lax notebooks

$(BROWSER_STAMP): requirements-browser.txt $(STAMP)
	$(PY) -m pip install --quiet -r requirements-browser.txt
	touch $(BROWSER_STAMP)

# JupyterLab on a copy of notebooks/, FFN_SMOKE=1, a fresh run folder that 04 and 07 train into first
# (papermill); Chromium opens 02 and 08, Run All, then checks outputs, widgets and dropdowns.
test-browser: $(STAMP)  ## notebooks 02 and 08 in JupyterLab, driven by headless Chromium (needs chromium)
	@if [ -z "$(CHROMIUM)" ]; then \
	  echo "test-browser: SKIPPED: no chromium on this machine. Install it (Debian/Ubuntu, as root:" \
	       "apt-get install chromium) or name it with CHROMIUM=/path/to/chromium."; \
	  exit 0; \
	fi; \
	$(MAKE) --no-print-directory -o $(STAMP) $(BROWSER_STAMP) || exit $$?; \
	echo "test-browser: $(CHROMIUM); what a failing check saw goes to $(BROWSER_ARTIFACTS)/"; \
	FFN_BROWSER=1 FFN_CHROMIUM="$(CHROMIUM)" FFN_BROWSER_ARTIFACTS="$(abspath $(BROWSER_ARTIFACTS))" \
	  $(PY) -m pytest tests/browser -v; status=$$?; \
	if [ $$status -ne 0 ]; then \
	  echo "test-browser: FAILED: screenshots, the lab's log and the notebooks as JupyterLab showed them" \
	       "are in $(BROWSER_ARTIFACTS)/"; \
	fi; \
	exit $$status

# It first says which run folder the notebooks use (runs/demo unless FFN_SMOKE or FFN_RUNS_DIR is set).
lab: $(STAMP)  ## open JupyterLab on notebooks/ (they read and write runs/demo, which make demo fills)
	@$(PY) -m ffnlib.notebooks where
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root,)

clean-notebooks: $(STAMP)  ## strip execution counts, papermill metadata and unchecked outputs
	$(PY) -m ffnlib.notebooks clean notebooks/*.ipynb

bench: $(STAMP)  ## the CPU benchmarks (data decoding, FFN vs vanilla step)
	$(PY) -m ffnlib.bench data
	$(PY) -m ffnlib.bench model
