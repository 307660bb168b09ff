# Two commands for a new user: `make demo` and `make test`. Each bootstraps .venv when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Stamps make the installs idempotent: re-run only when the dependency files change.
# Editable installs in compat mode (the checkout on sys.path): Hydra 1.3 finds plugins by walking the
# hydra_plugins namespace, which setuptools' default editable finder hides (hydra/launcher=batched).
EDITABLE := --config-settings editable_mode=compat
CORE_STAMP := $(VENV)/.core-installed
ALL_STAMP := $(VENV)/.all-installed

.PHONY: help demo test lint typecheck bench figs clean

help:  ## list the targets (the default)
	@awk -F':.*## ' '/^[a-z]+:.*## /{printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(CORE_STAMP): pyproject.toml constraints.txt | $(PY)
	$(PIP) install -q -c constraints.txt $(EDITABLE) -e .
	touch $@

$(ALL_STAMP): pyproject.toml constraints.txt | $(PY)
	$(PIP) install -q -c constraints.txt $(EDITABLE) -e '.[real,track,dev]'
	touch $@ $(CORE_STAMP)

demo: $(CORE_STAMP)  ## the offline demo: a small sweep, its table and figure (a few minutes on 2 cores)
	JAX_PLATFORMS=cpu $(PY) -m paper_figs.demo

test: $(ALL_STAMP)  ## the whole check CI runs: ruff, mypy (theory/, synthetic/), every test on 2 workers
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	JAX_PLATFORMS=cpu $(PY) -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder

lint: $(ALL_STAMP)  ## fix what ruff can fix and format
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

typecheck: $(ALL_STAMP)  ## mypy alone (configured in pyproject.toml)
	$(VENV)/bin/mypy

bench: $(ALL_STAMP)  ## the benchmarks (synthetic and realdata), printed and saved
	JAX_PLATFORMS=cpu $(PY) -m synthetic.bench
	$(PY) -m realdata.bench

figs: $(CORE_STAMP)  ## every figure from the results on disk (python -m paper_figs)
	$(PY) -m paper_figs

clean:  ## remove outputs, figures and caches
	rm -rf outputs multirun paper_figs/out .pytest_cache
