# The README's two commands are `make book` and `make test`; everything else is a helper.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PY ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
SHARED_DATA := $(abspath $(CURDIR)/../shared/data)

# Offline MNIST: use ../shared/data when it exists (see README); progress bars off in builds.
export NNLEARN_DATA ?= $(if $(wildcard $(SHARED_DATA)/mnist),$(SHARED_DATA),)
export NNLEARN_PROGRESS ?= 0
export NNLEARN_RESULTS := $(CURDIR)/_build/results
export PYDEVD_DISABLE_FILE_VALIDATION := 1
# One thread everywhere: identical numbers in baselines, nbval and the book, and two
# notebooks can run side by side on a 2-core machine.
export OMP_NUM_THREADS ?= 1

NOTEBOOKS := $(sort $(wildcard book/*.ipynb))
CH ?=

.PHONY: book test unit nbval html browser baseline check lab bench lock clean cache-check help
help:
	@echo "make book      execute every chapter and build the HTML into _build/html"
	@echo "make test      unit tests, nbval regression run, book build, browser check"
	@echo "make baseline CH=<slug>   re-execute book/<slug>.md into its committed .ipynb baseline"
	@echo "make check CH=<slug>      nbval regression run of one chapter"
	@echo "make lab       Jupyter Lab with the book's environment (MNIST path set)"
	@echo "make bench     batched-vs-loop training benchmark and per-page execution times"

$(VENV)/.installed: requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	@touch $@

# jupyter-cache hashes code cells only: clear it whenever nnlearn's code changes.
cache-check:
	@mkdir -p _build
	@h=$$(find nnlearn -name '*.py' | sort | xargs cat | sha256sum | cut -c1-16); \
	if [ "$$(cat _build/.nnlearn-hash 2>/dev/null)" != "$$h" ]; then \
	  rm -rf _build/.jupyter_cache; echo "$$h" > _build/.nnlearn-hash; \
	  echo "nnlearn changed since the last build: execution cache cleared"; fi

book: $(VENV)/.installed cache-check html

# Sphinx re-reads only changed pages: touch the scorecard so it always collects fresh results.
html:
	@touch book/scorecard.md
	$(BIN)/jupyter-book build . --path-output . -q
	@test -f _build/html/index.html
	@echo "Book built: _build/html/index.html"

unit: $(VENV)/.installed
	$(BIN)/pytest -q tests --ignore=tests/browser -n 2

nbval: $(VENV)/.installed
	$(BIN)/pytest -q --nbval-lax --nbval-current-env --nbval-cell-timeout=600 -p no:xdist $(NOTEBOOKS)

browser: $(VENV)/.installed
	$(BIN)/pytest -q -rs tests/browser

# nbval and the book build each execute every chapter: run them side by side, one core each.
test: $(VENV)/.installed cache-check
	$(MAKE) unit
	OMP_NUM_THREADS=1 $(MAKE) -j2 --output-sync=target nbval html
	$(MAKE) browser

baseline: $(VENV)/.installed
	@test -n "$(CH)" || { echo "usage: make baseline CH=<slug>  (or CH=all)"; exit 2; }
	$(BIN)/python -m nnlearn.booktools baseline $(if $(filter all,$(CH)),$(filter-out book/intro.md,$(wildcard book/*.md)),book/$(CH).md)

check: $(VENV)/.installed
	@test -n "$(CH)" || { echo "usage: make check CH=<slug>"; exit 2; }
	$(BIN)/pytest -q --nbval-lax --nbval-current-env --nbval-cell-timeout=600 -p no:xdist book/$(CH).ipynb

lab: $(VENV)/.installed
	$(BIN)/jupyter lab

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/run.py

lock: $(VENV)/.installed
	$(BIN)/python -m nnlearn.booktools lock requirements.lock

clean:
	rm -rf _build
