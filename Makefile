# letterlock: the two commands.
#   make run   - set up .venv, install, run the server with demo data under ./var
#   make test  - set up .venv, install, run the whole test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck bench clean

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "need Python 3.11 or newer (python3.11 or python3)"; exit 1; }
	@# Debian splits venv/ensurepip into its own package; install it when we can.
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    ver=$$($(PYTHON) -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")'); \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q python$$ver-venv || \
	    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python$$ver-venv; }; \
	  else echo "Python's venv module is missing: apt-get install python3-venv"; exit 1; fi; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/letterlock --home ./var serve --demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/append.py

clean:
	rm -rf $(VENV) var
