# Two commands do all set-up on a fresh machine:
#   make demo   installs into .venv, then runs `simkit demo`
#   make test   installs into .venv, then runs the test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-all lint format bench bench-peer clean help

help:
	@echo "make demo      install, then run the demonstration chain (simkit demo)"
	@echo "make test      install, then run the fast tests (< 5 min on 2 cores)"
	@echo "make test-all  install, then run every test, slow ones too"
	@echo "make lint      ruff check + format check"
	@echo "make bench     run the benchmarks (see BENCHMARKS.md)"

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first, from constraints.txt: the pinned CPU build (a plain `torch` would pull
# several GB of CUDA packages); then the project with its extras.
$(STAMP): $(PY) pyproject.toml constraints.txt
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c constraints.txt torch
	$(PIP) install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/simkit demo

test: install
	$(PY) -m pytest -q

test-all: install
	$(PY) -m pytest -q -m ""

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache *.egg-info
