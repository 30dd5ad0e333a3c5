# The README's two commands are `make book` and `make test`.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
ARCH := $(shell uname -m)
PROFILE ?= small
STAMP := $(VENV)/.installed

.PHONY: book site reproduce status test test-all notebooks setup data lint clean-outputs bench lab

setup: $(STAMP) data

$(STAMP): pyproject.toml requirements/torch-$(ARCH).txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements/torch-$(ARCH).txt
	$(BIN)/python -m pip install -q -c requirements/torch-$(ARCH).txt -e '.[dev,book,lab]'
	touch $(STAMP)

# Fashion-MNIST comes from Debian's package where apt is usable; otherwise see README.
# So do chromium and chromedriver, which the browser test (tests/test_browser.py) drives; where
# they cannot be installed that test is skipped with the reason.
data:
	@if [ ! -d /usr/share/datasets/fashion-mnist ] && [ -z "$$KC_DATA" ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		(apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
		 (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null)) ; \
	fi
	@if ! command -v chromedriver >/dev/null && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		(apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 || \
		 (apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null) || \
		 echo "chromium could not be installed; tests/test_browser.py will be skipped") ; \
	fi

# The tests and the docstring examples of kc (testpaths and --doctest-modules in pyproject.toml),
# in one pytest-xdist worker per core (JOBS=1 for one process). The tests that read the smoke
# tree (every notebook run once under smoke) and the book and browser tests share one worker
# (--dist loadgroup): it builds the tree and the site while the other runs the rest.
# `test` is the default tier (before every commit, 10 minutes on 2 cores), `test-all` adds the
# tests marked slow (CONTRIBUTING.md, "Test tiers").
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
test: setup
	$(BIN)/python -m pytest -q -n $(JOBS) --dist loadgroup --durations=10

test-all: setup
	$(BIN)/python -m pytest -q -n $(JOBS) --dist loadgroup --durations=10 -m ''

notebooks: setup
	$(BIN)/kc run --all --profile $(PROFILE) -j $(JOBS)

# The book from the published results (book/published/$(PROFILE), committed for `small`):
# `kc run --all` first says which notebooks are missing or stale and executes only those (a
# fresh clone executes nothing when every result is fresh; `kc status` lists them), then the
# site is built. The book is built even when a notebook fails; the exit status still reports
# the failure. After Ctrl-C (exit 130) nothing more is done: `make book` again resumes.
book: setup
	status=0; $(BIN)/kc run --all --profile $(PROFILE) -j $(JOBS) || status=$$?; \
	[ $$status -ne 130 ] || exit 130; \
	$(BIN)/kc book --profile $(PROFILE) && exit $$status

# The site from the published results as they are, executing nothing (stale pages carry a
# banner, missing ones a placeholder): what CI builds and browses.
site: setup
	$(BIN)/kc book --profile $(PROFILE)

status: setup
	$(BIN)/kc status --profile $(PROFILE)

# Every notebook recomputed from an empty cache of its own into outputs/reproduce/$(PROFILE)
# (run again after an interruption: finished notebooks and cached entries are kept), then
# compared with the published results: per CSV column the largest difference, every changed
# verdict (exit 1 when anything differs). JOBS workers, one thread each (`kc run -j`).
reproduce: setup
	KC_CACHE=$(CURDIR)/outputs/reproduce/cache $(BIN)/kc run --all --profile $(PROFILE) \
		-j $(JOBS) --output-root outputs/reproduce/$(PROFILE)
	$(BIN)/kc compare outputs/reproduce/$(PROFILE) --profile $(PROFILE)

# JupyterLab on the notebooks with this venv's kernel (python3). A kernel starts in the
# notebook's folder, so the cache is pinned to the repository's (outputs of a notebook run by
# hand go to notebooks/outputs/). `make lab PORT=8889` for another port.
PORT ?= 8888
lab: setup
	KC_CACHE=$${KC_CACHE:-$(CURDIR)/data/cache} $(BIN)/jupyter lab --port=$(PORT) notebooks

lint: setup
	$(BIN)/ruff check kc tests benchmarks
	$(BIN)/lint-imports

# Cold then warm `kc run --all` + `kc book` of $(PROFILE) in a fresh cache, with the phase
# breakdown and the load beside every figure (benchmarks/README.md).
bench: setup
	$(BIN)/python benchmarks/bench_phases.py --profile $(PROFILE)

clean-outputs:
	rm -rf outputs _build
