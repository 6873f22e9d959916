# `make test` is the one command that installs everything and runs every check.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test lint typecheck docs pytest demo bench peers soak

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

# The documentation site (mkdocs.yml) into site/: `--strict` makes every warning an error
# (a docstring reference that does not resolve, a nav entry or anchor that is missing).
# mkdocs only logs a link to a missing file (the guides link to ../examples on purpose),
# so the check after the build fails on a missing target inside docs/.
docs: install
	@out=$$($(VENV)/bin/mkdocs build --strict --site-dir site 2>&1); rc=$$?; \
	printf '%s\n' "$$out"; test $$rc -eq 0 || exit $$rc; \
	missing=$$(printf '%s\n' "$$out" | sed -nE \
	  -e "s/.*contains a link '[^']*', but the target '([^']*)' is not found.*/\1/p" \
	  -e "s/.*contains a link '([^']*)', but the target is not found.*/\1/p" \
	  | grep -v '^\.\./'); \
	test -z "$$missing" || { echo "docs: links to missing pages in docs/: $$missing" >&2; exit 1; }

pytest: install
	$(PY) -m pytest

test: lint typecheck docs pytest

demo: install
	$(VENV)/bin/ranvier demo

bench: install
	$(PY) -m bench.run_all --write

# ranvier beside LangGraph and DBOS (the `bench` extra, which `make test` never installs)
peers: install
	$(PY) -m pip install -q -e '.[all,bench]'
	$(PY) -m bench.peers --write

# The fault campaigns of tests/faults, again and again (docs/reliability.md).
SOAK_MINUTES ?= 30
soak: install
	$(PY) -m tests.faults.soak --minutes $(SOAK_MINUTES)
