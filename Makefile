# Two commands do all set-up on a fresh machine:
#   make demo   installs into .venv, then runs `simkit demo`
#   make test   installs into .venv, then runs the test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-all lint format docs bench bench-peer clean help

help:
	@echo "make demo      install, then run the demonstration chain (simkit demo)"
	@echo "make test      install, then run the fast tests (< 5 min on 2 cores)"
	@echo "make test-all  install, then run every test, slow ones too"
	@echo "make lint      ruff check + format check"
	@echo "make docs      install the docs extra, then build the documentation site into site/ (--strict)"
	@echo "make bench     run the benchmarks (see BENCHMARKS.md)"
	@echo "make bench-peer  install the peer OmniFold (TensorFlow) in .venv-peer, run it beside ours"

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first, from constraints.txt: the pinned CPU build (a plain `torch` would pull
# several GB of CUDA packages); then the project with its extras.
$(STAMP): $(PY) pyproject.toml setup.py simkit/surrogates/_spline.c constraints.txt
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c constraints.txt torch
	$(PIP) install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# The documentation's own packages (mkdocs, Material, mkdocstrings), only for make docs.
DOCS_STAMP := $(VENV)/.docs-installed
$(DOCS_STAMP): $(STAMP)
	$(PIP) install --quiet -c constraints.txt -e '.[docs]'
	@touch $(DOCS_STAMP)

# --strict: a broken link or anchor, a page missing from mkdocs.yml's nav or a docstring
# the API reference cannot render fails the build. NO_MKDOCS_2_WARNING: Material's banner.
docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

demo: install
	$(VENV)/bin/simkit demo

# -n 2 (pytest-xdist): two worker processes, each with half the cores for torch
# (tests/conftest.py); the suite takes ~3 min instead of ~5 on 2 cores
test: install
	$(PY) -m pytest -q -n 2

test-all: install
	$(PY) -m pytest -q -n 2 -m ""

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# Optional: the peer OmniFold (PyPI `omnifold`, TensorFlow) in a venv of its own, so that
# benchmarks/omnifold_gaussian.py can run it side by side. Large download (~600 MB).
PEER_VENV ?= .venv-peer
bench-peer: install
	test -x $(PEER_VENV)/bin/python || $(PYTHON) -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(PEER_VENV)/bin/python -m pip install --quiet "tensorflow>=2.15" "omnifold==0.1.36"
	$(PY) benchmarks/omnifold_gaussian.py --peer

clean:
	rm -rf $(VENV) $(PEER_VENV) runs site .pytest_cache .ruff_cache *.egg-info
