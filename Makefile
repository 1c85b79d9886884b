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
# Claim results (nnlearn.claims.record, read by the scorecard) go to $NNLEARN_RESULTS. The book
# build has its own folder, so its scorecard shows only what its own pages computed; nbval,
# `make check`, `make baseline` and Jupyter kernels of `make lab` write _build/results.
export NNLEARN_RESULTS := $(CURDIR)/_build/results
BOOK_RESULTS := $(CURDIR)/_build/html-results
export PYDEVD_DISABLE_FILE_VALIDATION := 1
# One thread everywhere: identical numbers in baselines, nbval and the book, and two
# notebooks can run side by side on a 2-core machine.
export OMP_NUM_THREADS ?= 1

NOTEBOOKS := $(sort $(wildcard book/*.ipynb))
CH ?=
# STRICT=1 (default): any Sphinx warning (a broken cross-reference, a figure label at the wrong
# metadata level, a bad citation) fails the build, after reporting all of them. STRICT=0 warns only.
STRICT ?= 1
JB_FLAGS := $(if $(filter 1,$(STRICT)),-W --keep-going)
# Extra flags for `make lab`, e.g. LAB_ARGS="--no-browser --port 8890"; root gets --allow-root.
BOOK_JOBS ?= 2
LAB_ARGS ?=
LAB_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

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

# jupyter-cache hashes code cells only, and Sphinx re-reads only changed pages: whenever any
# nnlearn/**/*.py changes (content, name, added or removed file), clear the execution cache, the
# book's results and Sphinx's saved environment (_build/.doctrees), so every page is re-read and
# re-executed. Results and cache go together: a cached page does not re-record its results.
cache-check:
	@mkdir -p _build
	@h=$$(find nnlearn -name '*.py' -not -path '*/__pycache__/*' | LC_ALL=C sort | \
	  while read -r f; do printf '%s\n' "$$f"; cat "$$f"; done | sha256sum | cut -c1-16); \
	if [ "$$(cat _build/.nnlearn-hash 2>/dev/null)" != "$$h" ] || [ ! -d "$(BOOK_RESULTS)" ]; then \
	  rm -rf _build/.jupyter_cache _build/.doctrees "$(BOOK_RESULTS)"; mkdir -p "$(BOOK_RESULTS)"; \
	  echo "$$h" > _build/.nnlearn-hash; \
	  echo "nnlearn changed since the last build: every page will be re-read and re-executed"; fi

book: $(VENV)/.installed cache-check html

# Chapters not yet in the execution cache are executed first, BOOK_JOBS at a time (one core each;
# `make test` runs the book beside nbval, so one there), and cached exactly as the build's own
# cache mode would; the build then executes only the scorecard (forced), after every chapter.
# Sphinx re-reads only changed pages: touch the scorecard so it always collects fresh results.
# A page is not re-read after a failed or non-strict build, so it would hide its warnings from
# the next strict build: only a passing strict build leaves _build/.html-strict-ok behind, and
# without it Sphinx's saved environment is dropped (pages come from the execution cache).
html: cache-check
	@touch book/scorecard.md
	@test -f _build/.html-strict-ok || rm -rf _build/.doctrees
	@rm -f _build/.html-strict-ok
	NNLEARN_RESULTS=$(BOOK_RESULTS) BOOK_JOBS=$(BOOK_JOBS) $(BIN)/python -m nnlearn.booktools \
	  fill-cache _build/.jupyter_cache $(filter-out book/intro.md book/references.md,$(wildcard book/*.md))
	NNLEARN_RESULTS=$(BOOK_RESULTS) $(BIN)/jupyter-book build . --path-output . -q $(JB_FLAGS)
	@test -f _build/html/index.html
	@$(if $(JB_FLAGS),touch _build/.html-strict-ok,true)
	@echo "Book built: _build/html/index.html (results of its pages: $(BOOK_RESULTS))"

unit: $(VENV)/.installed
	$(BIN)/pytest -q tests --ignore=tests/browser -n 2

nbval: $(VENV)/.installed
	$(BIN)/pytest -q --nbval-lax --nbval-current-env --nbval-cell-timeout=600 -p no:xdist $(NOTEBOOKS)

browser: $(VENV)/.installed
	$(BIN)/pytest -q -rs tests/browser

# nbval and the book build each execute every chapter: run them side by side, one core each.
test: $(VENV)/.installed cache-check
	$(MAKE) unit
	OMP_NUM_THREADS=1 $(MAKE) -j2 --output-sync=target nbval html BOOK_JOBS=1
	$(MAKE) browser

baseline: $(VENV)/.installed
	@test -n "$(CH)" || { echo "usage: make baseline CH=<slug>  (or CH=all)"; exit 2; }
	$(BIN)/python -m nnlearn.booktools baseline $(if $(filter all,$(CH)),$(filter-out book/intro.md,$(wildcard book/*.md)),book/$(CH).md)

check: $(VENV)/.installed
	@test -n "$(CH)" || { echo "usage: make check CH=<slug>"; exit 2; }
	@$(BIN)/python -m nnlearn.booktools check-pair book/$(CH).md
	$(BIN)/pytest -q --nbval-lax --nbval-current-env --nbval-cell-timeout=600 -p no:xdist book/$(CH).ipynb

lab: $(VENV)/.installed
	$(BIN)/jupyter lab $(LAB_ROOT) $(LAB_ARGS)

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/run.py

lock: $(VENV)/.installed
	$(BIN)/python -m nnlearn.booktools lock requirements.lock

clean:
	rm -rf _build
