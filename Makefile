# ffn-workbook: `make demo` runs the whole workbook headless, `make test` runs the tests.
# Both create .venv and install the pinned requirements when needed.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
RUN ?= runs/demo

.PHONY: help setup demo test test-unit test-notebooks lab clean-notebooks bench

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)  ## create .venv with the pinned requirements and ffnlib (editable)

demo: $(STAMP)  ## the main job: notebooks 01..08 headless on the built-in data, into runs/demo
	$(PY) -m ffnlib.workbook reproduce --profile demo --out $(RUN)

test: $(STAMP)  ## unit tests, then every notebook under nbval in smoke mode
	$(PY) -m pytest tests
	$(MAKE) --no-print-directory test-notebooks

test-unit: $(STAMP)  ## unit tests only
	$(PY) -m pytest tests

# Notebooks share one fresh run folder (04 and 07 train what 05 and 08 read), never runs/ itself.
test-notebooks: $(STAMP)  ## nbval over the notebooks in smoke mode (FFN_SMOKE=1, about a minute each at most)
	runs_dir=$$(mktemp -d) && trap 'rm -rf "$$runs_dir"' EXIT && \
	FFN_SMOKE=1 FFN_RUNS_DIR="$$runs_dir" $(PY) -m pytest --nbval-lax notebooks

lab: $(STAMP)  ## open JupyterLab on notebooks/
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root,)

clean-notebooks: $(STAMP)  ## strip execution counts, papermill metadata and unchecked outputs
	$(PY) -m ffnlib.notebooks clean notebooks/*.ipynb

bench: $(STAMP)  ## the CPU benchmarks (data decoding, FFN vs vanilla step)
	$(PY) -m ffnlib.bench data
	$(PY) -m ffnlib.bench model
