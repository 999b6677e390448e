# The two commands: `make demo` and `make test`. Everything they need is installed here.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint wheel-check bench system-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,demo]'
	touch $(STAMP)

# Debian packages the integration tests need (Dovecot for IMAP). Installed only when missing.
system-deps:
	./scripts/install-system-deps.sh

demo: $(STAMP)
	$(BIN)/vote-watcher demo

lint: $(STAMP)
	$(BIN)/ruff check watcher tests bench
	$(BIN)/ruff format --check watcher tests bench
	$(BIN)/mypy

# The wheel carries LICENSE and NOTICE and no test scaffolding (scripts/check-wheel.sh).
wheel-check: $(STAMP)
	./scripts/check-wheel.sh $(BIN)/python

# The tests run in TEST_WORKERS processes (pytest-xdist; 0 runs them in this one): each worker has its own Dovecot,
# sandboxes, SMTP sinks and databases on free ports and in its own temporary folders. Most of the suite waits on
# daemons and servers rather than computing (about a third of two cores' time), so four workers on two cores run it
# in under 5 minutes where one took 14; no test times the CPU.
TEST_WORKERS ?= 4

test: $(STAMP) system-deps lint wheel-check
	$(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal

bench: $(STAMP) system-deps
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
