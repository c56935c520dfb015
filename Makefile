# Every target sets itself up: a fresh clone needs only Python 3.11+ and make
# (and, for the tests, Node.js 20+ with npm: node-deps).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The packages mypy checks.
TYPED := api_server leo_mesh mock_ai_server callback_server devstack sdk/leo_client contract/leo_contract

.PHONY: setup node-deps gen lint breaking run test test-fast bench clean

# Makes .venv, brings it up to date when a pyproject file changed, and makes
# it again when an earlier setup was interrupted; silent when it is complete.
setup:
	@$(PYTHON) tools/setup_venv.py $(VENV)

# The Node packages the client tests use (tests/node: @grpc/grpc-js,
# @grpc/proto-loader, eventsource), pinned by its package-lock.json and
# installed from the npm registry once (tools/npm_deps.py). Only the tests
# need them (and Node.js 20+); make run does not.
node-deps: setup
	@$(PY) tools/npm_deps.py tests/node

gen: setup
	$(PY) tools/protos.py gen

# The Python (ruff: lint and format; mypy: types) and the contracts (buf).
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy $(TYPED)
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) tools/protos.py lint

breaking: setup
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) tools/protos.py breaking main

run: setup
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) -m devstack

# Lint first: CI runs `make test` only, and a finding fails it. Two pytest
# workers: most end-to-end time is waiting on servers, not computing. Three
# were faster, but under them a burst test once waited 10 s for an answer:
# its threads then shared one HTTP client, which also read a socket it had
# closed (EBADF). Each thread has its own client now; more workers are untried.
# Each test module runs whole on one worker (loadfile), so what it starts for
# the module (a mesh, the flow in process, an S3 server) starts once; modules
# go in collection order (e2e, the longest, first), not by how many tests they
# hold. (xdist_group marks would do nothing: pytest-xdist 3.8 renames a node
# by a field pytest 9.2 no longer reads.)
TEST_WORKERS ?= 2
test: node-deps lint
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

# Unit and integration tests only: seconds, not minutes.
test-fast: node-deps
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder tests/unit tests/integration $(PYTEST_ARGS)

# The mesh beside an echo of the same contract (docs/performance.md); QUICK=1 for a short run.
bench: setup
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) -m bench $(if $(QUICK),--quick)

clean:
	rm -rf $(VENV) .run .pytest_cache tests/node/node_modules
