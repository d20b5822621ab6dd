# The workbench's entry points. `make run` starts the stack; `make test` runs every test.
# Both create the virtual environment on first use, so a fresh machine needs only Python 3.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install run test clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[lab,test]'
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/cqrs-demo up

test: install
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .run build .pytest_cache
