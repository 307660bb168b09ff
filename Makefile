# Two commands for a new user: `make demo` and `make test`. Each bootstraps .venv when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Stamps make the installs idempotent: re-run only when the dependency files change.
CORE_STAMP := $(VENV)/.core-installed
ALL_STAMP := $(VENV)/.all-installed

.PHONY: demo test lint bench figs clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(CORE_STAMP): pyproject.toml constraints.txt | $(PY)
	$(PIP) install -q -c constraints.txt -e .
	touch $@

$(ALL_STAMP): pyproject.toml constraints.txt | $(PY)
	$(PIP) install -q -c constraints.txt -e '.[real,track,dev]'
	touch $@ $(CORE_STAMP)

demo: $(CORE_STAMP)
	JAX_PLATFORMS=cpu $(PY) -m paper_figs.demo

test: $(ALL_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	JAX_PLATFORMS=cpu $(PY) -m pytest -q

lint: $(ALL_STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(ALL_STAMP)
	JAX_PLATFORMS=cpu $(PY) -m synthetic.bench
	$(PY) -m realdata.bench

figs: $(CORE_STAMP)
	$(PY) -m paper_figs

clean:
	rm -rf outputs multirun paper_figs/out .pytest_cache
