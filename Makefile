# Two entry points (see README): `make demo` and `make test`. Each sets up what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install data demo test lint
install: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# make test also tests the structure stage: the optional extra (torch, chgnet, ase, pyxtal)
$(VENV)/.installed-structure: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[dev,structure]'
	touch $@

data: install
	$(BIN)/discover data fetch

demo: data
	$(BIN)/discover run --n 100000 --target "bandgap>1.5"

test: data $(VENV)/.installed-structure
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .
