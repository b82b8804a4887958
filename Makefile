# Two set-up commands: `make demo` (the main job on the embedded defaults) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install system-check demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test,dev]"
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the archiver with its test tools

# WeasyPrint (packets) needs Pango and HarfBuzz from the system; the tests also use pdftotext.
SYSTEM_LIBS := pango-1.0 pangoft2-1.0 harfbuzz-subset
system-check:
	@missing=""; for l in $(SYSTEM_LIBS); do $(PYTHON) -c "import ctypes.util,sys; sys.exit(not ctypes.util.find_library('$$l'))" || missing="$$missing $$l"; done; \
	 [ -z "$(WITH_PDFTOTEXT)" ] || command -v pdftotext >/dev/null || missing="$$missing pdftotext"; \
	 if [ -n "$$missing" ]; then echo "missing system libraries:$$missing"; \
	   echo "install them with: sudo apt-get install libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core poppler-utils"; exit 1; fi

demo: system-check $(STAMP) ## run a simulated police page through the archiver (no network, no credentials)
	$(BIN)/archiver demo --dir demo-archive

test: WITH_PDFTOTEXT=1
test: system-check $(STAMP) ## run the test suite (PostgreSQL too when ARCHIVER_TEST_DATABASE_URL is set)
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check archiver connectors exports tests bench
	$(BIN)/mypy archiver

bench: $(STAMP) ## print throughput numbers
	$(BIN)/python -m bench.capture
	$(BIN)/python -m bench.search
	$(BIN)/python -m bench.packet

clean:
	rm -rf demo-archive build dist *.egg-info
