# The two commands of the README: `make lab` runs the product, `make test` runs the tests.
# Both create .venv on first use and install the package with everything it needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test lab lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

lint: $(STAMP)
	$(PY) -m ruff check timetravel_kernel tests benchmarks

test: $(STAMP) lint
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) -m benchmarks.state_engine

clean:
	rm -rf $(VENV) build dist *.egg-info
