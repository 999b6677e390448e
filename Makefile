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

# TEST_WORKERS=N runs the tests in N processes (pytest-xdist): each has its own Dovecot, sandboxes and databases
# on free ports. Off by default: on a loaded 2-core machine, 4 workers made the CPU-timed tests fail.
TEST_WORKERS ?= 0

test: $(STAMP) system-deps lint wheel-check
	$(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal

bench: $(STAMP) system-deps
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
