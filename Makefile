# Every target works from a fresh clone: the first one run makes .venv and installs.
# ria-calls-bot needs Python 3.11 or newer: `make run PYTHON=python3.11` picks one.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# An interpreter's identity, recorded in the stamp: its real path and version
PY_ID  := import os, sys; print(os.path.realpath(sys.executable), sys.version.split()[0])
NEEDS  := ria-calls-bot needs Python 3.11 or newer: install one and run e.g. make run PYTHON=python3.11

.PHONY: run test test-fast test-all test-container coverage bench soak lint format clean FORCE

# Checked on every run (two interpreter starts): a .venv made by another Python (PYTHON
# changed, an old one tried first) or by an install that failed (no stamp) is made again
# from scratch, so a failure never sticks; a changed pyproject.toml only reinstalls.
$(STAMP): pyproject.toml FORCE
	@set -e; \
	want="$$($(PYTHON) -c '$(PY_ID)' 2>/dev/null)" || { \
		echo "make: $(PYTHON) not found; $(NEEDS)" >&2; exit 1; }; \
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
		echo "make: $(PYTHON) is Python $${want##* }; $(NEEDS)" >&2; exit 1; }; \
	have="$$($(BIN)/python -c '$(PY_ID)' 2>/dev/null || true)"; \
	if [ ! -f $(STAMP) ] || [ "$$have" != "$$want" ]; then \
		echo "making $(VENV) with Python $$want"; \
		rm -rf $(VENV); \
		$(PYTHON) -m venv $(VENV); \
	elif [ ! pyproject.toml -nt $(STAMP) ]; then \
		exit 0; \
	fi; \
	rm -f $(STAMP); \
	$(BIN)/pip install --quiet --upgrade pip; \
	$(BIN)/pip install --quiet -e '.[test]'; \
	echo "$$want" > $(STAMP)

FORCE:

run: $(STAMP)
	$(BIN)/ria-calls-bot run

# The suite waits on I/O and on CLI processes starting far more than it computes: 4 workers
# keep 2 cores busy (on a shared 2-core machine 5:11, where 2 workers took 8:23). loadgroup
# keeps each xdist_group (a costly module fixture, a service shared in order) on one worker.
# TEST_WORKERS=2 make test on a machine that is short of memory.
TEST_WORKERS ?= 4
PYTEST := $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup

test: $(STAMP)
	$(PYTEST)

# The quick loop while coding: no fault injection (slow), no container build
test-fast: $(STAMP)
	$(PYTEST) -m "not slow and not container"

# The suite under coverage, the CLI subprocesses it starts included (settings in pyproject.toml)
coverage: $(STAMP)
	rm -rf build/coverage
	mkdir -p build/coverage
	@# a failing test still leaves the figures measured: combine and report, then fail
	$(BIN)/coverage run -m pytest -q -n $(TEST_WORKERS) --dist loadgroup; status=$$?; \
	$(BIN)/coverage combine --quiet && $(BIN)/coverage report; exit $$status

test-container: $(STAMP)
	$(BIN)/python -m pytest -q -m container

test-all: test test-container

bench: $(STAMP)
	$(BIN)/python -m bench

# A compressed day under load with an outage and a crash (bench/soak.py); 30 minutes, or
# SOAK_MINUTES=5 make soak. Not part of `make test`: the report goes to bench/results/.
soak: $(STAMP)
	$(BIN)/python -m bench.soak

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
