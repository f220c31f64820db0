# The two first-run commands: `make demo` and `make test` (see README.md).
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/ltray-installed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

setup: $(BIN)/ltray-installed

demo: setup
	$(BIN)/python -m ltray.sweep sweeps/demo.yaml $(if $(wildcard experiments/demo/experiment.json),--resume) -q
	$(BIN)/python -m analysis experiments/demo

test: setup
	RAY_AUTH_MODE=disabled $(BIN)/python -m pytest -q

bench: setup
	RAY_AUTH_MODE=disabled $(BIN)/python bench/run_all.py

.PHONY: setup demo test bench
