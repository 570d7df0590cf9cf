# Two commands for a fresh clone: `make demo` and `make test`. Both create .venv
# when it is missing and install the project into it first.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PACKAGES := gateway adapters policies registry_stub

.PHONY: install demo test lint typecheck pytest bench soak clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/mediator demo

test: $(STAMP)
	$(BIN)/ruff format --check $(PACKAGES) tests bench
	$(BIN)/ruff check $(PACKAGES) tests bench
	$(BIN)/mypy
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff format $(PACKAGES) tests bench
	$(BIN)/ruff check --fix $(PACKAGES) tests bench

bench: $(STAMP)
	$(BIN)/python -m bench.run

# Two malloc arenas, as for a server process with a few threads: glibc otherwise
# gives each writer thread an arena of its own.
soak: $(STAMP)
	MALLOC_ARENA_MAX=2 $(BIN)/python -m bench.soak

clean:
	rm -rf var bench/out .pytest_cache .mypy_cache .ruff_cache
