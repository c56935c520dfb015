# Every target sets itself up: a fresh clone needs only Python 3.11+ and make.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: setup gen lint breaking run test test-fast bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

gen: $(STAMP)
	$(PY) tools/protos.py gen

lint: $(STAMP)
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) tools/protos.py lint

breaking: $(STAMP)
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) tools/protos.py breaking main

run: $(STAMP)
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) -m leo_mesh.devstack

test: $(STAMP)
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) -m pytest $(PYTEST_ARGS)

# Unit and integration tests only: seconds, not minutes.
test-fast: $(STAMP)
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) -m pytest tests/unit tests/integration $(PYTEST_ARGS)

# The mesh beside an echo of the same contract (docs/performance.md); QUICK=1 for a short run.
bench: $(STAMP)
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) -m bench $(if $(QUICK),--quick)

clean:
	rm -rf $(VENV) .run .pytest_cache
