# Quick start: `make demo` runs the examples, `make test` the whole suite (PG=14..18 picks a server).
PYTHON ?= python3
VENV ?= .venv
PG ?=
ARGS ?=
RUNS ?= 1000
REPEAT ?= 1
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The benchmark's own venv: pytest-postgresql, installed there, must not load in test runs.
BENCH_VENV ?= .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed
PG_OPT := $(if $(PG),--pglocks-pg=$(PG))
MAJORS := 14 15 16 17 18

.PHONY: demo test matrix conformance lint bench soak clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/pytest examples $(PG_OPT) $(ARGS)

test: $(STAMP)
	$(BIN)/pytest $(PG_OPT) -n 2 $(ARGS)

matrix: $(STAMP)
	@for major in $(MAJORS); do \
		echo "=== PostgreSQL $$major"; \
		$(MAKE) --no-print-directory test PG=$$major || exit 1; \
	done

# The differential with PostgreSQL's own isolation tester on each major; writes the table of
# docs/isolation.md (REPEAT=N runs each spec N times; MAJORS="14 18" picks majors).
# SPECS=waiting, waits (every spec with a waiting step) or NAME,NAME records those rows
# only; LOAD=N (CPU-bound processes beside) only prints the figures; JOBS=N runs N specs at once.
conformance: $(STAMP)
	$(BIN)/python tests/conformance.py --repeat $(REPEAT) $(if $(SPECS),--specs $(SPECS)) \
		$(if $(LOAD),--load $(LOAD)) $(if $(JOBS),--jobs $(JOBS)) $(MAJORS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

$(BENCH_STAMP): pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev,bench]"
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python -m bench $(PG_OPT)

# Not in CI: every example RUNS times under -n 2 beside a CPU hog, then what was left behind.
soak: $(STAMP)
	$(BIN)/python tools/soak.py --runs $(RUNS) $(if $(PG),--pg $(PG))

clean:
	rm -rf $(VENV) $(BENCH_VENV) .pytest_cache .mypy_cache .ruff_cache
