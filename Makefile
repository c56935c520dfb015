# Every target sets itself up: a fresh clone needs only Python 3.11+ and make
# (and, for the tests, Node.js 20+ with npm: node-deps).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The packages mypy checks.
TYPED := api_server leo_mesh mock_ai_server callback_server devstack sdk/leo_client contract/leo_contract

.PHONY: setup node-deps gen lint breaking run test test-fast console-screenshot bench clean

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
# Each module runs whole on one worker (pyproject.toml's addopts).
TEST_WORKERS ?= 2
test: node-deps lint
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

# Unit and integration tests only: seconds, not minutes.
test-fast: node-deps
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) -m pytest -n $(TEST_WORKERS) tests/unit tests/integration $(PYTEST_ARGS)

# docs/console.png, the README's picture of the web console, taken by its
# browser test (tests/e2e/test_console.py) in the state that test reaches.
console-screenshot: setup
	LEO_CONSOLE_SCREENSHOT=docs/console.png PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) -m pytest -n 0 -q \
		tests/e2e/test_console.py -k test_create_shows_progress_then_images_of_the_requested_size

# The mesh beside an echo of the same contract, then the queue's rows against
# their targets (docs/performance.md); QUICK=1 for a short run, ROWS=queue
# for the queue's rows alone.
bench: setup
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) -m bench $(if $(QUICK),--quick) $(if $(ROWS),--only $(ROWS))

clean:
	rm -rf $(VENV) .run .pytest_cache .test-artifacts tests/node/node_modules
