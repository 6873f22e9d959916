# `make test` is the one command that installs everything and runs every check.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test lint typecheck pytest demo bench

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[all,dev]'
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(VENV)/bin/ruff check src tests bench examples

typecheck: install
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy --strict examples/order_pipeline.py

pytest: install
	$(PY) -m pytest

test: lint typecheck pytest

demo: install
	$(VENV)/bin/ranvier demo

bench: install
	$(PY) -m bench.run_all
