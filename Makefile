# Two set-up commands: `make demo` (the main job on the embedded defaults) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test,dev]"
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the archiver with its test tools

demo: $(STAMP) ## run a simulated police page through the archiver (no network, no credentials)
	$(BIN)/archiver demo --dir demo-archive

test: $(STAMP) ## run the test suite (PostgreSQL too when ARCHIVER_TEST_DATABASE_URL is set)
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check archiver connectors exports tests bench
	$(BIN)/mypy archiver

bench: $(STAMP) ## print throughput numbers
	$(BIN)/python -m bench.capture
	$(BIN)/python -m bench.search

clean:
	rm -rf demo-archive build dist *.egg-info
