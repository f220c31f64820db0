# The two first-run commands: `make demo` and `make test` (see README.md).
# Python: PY=/path/to/python, else the newest of SUPPORTED found on PATH that actually runs.
# VENV: where to install: .venv, or .venv-X.Y for a PY given on the command line (one per Python).
SUPPORTED := 3.13 3.12 3.11 3.10
comma := ,
ifndef PY
PY := $(firstword $(foreach v,$(SUPPORTED),$(shell python$(v) -c 'import sys; sys.exit(sys.version_info[:2] != ($(subst .,$(comma),$(v))))' >/dev/null 2>&1 && echo python$(v))))
endif
ifeq ($(origin PY),command line)
VENV ?= .venv-$(shell $(PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
endif
VENV ?= .venv
BIN := $(VENV)/bin
LOCK := requirements/lock.txt
EXTRAS := sweep,analysis,test

$(BIN)/ltray-installed: pyproject.toml $(LOCK)
	@test -x $(BIN)/python || { \
	  test -n "$(PY)" || { echo "error: no supported Python found: looked for $(foreach v,$(SUPPORTED),python$(v)) on PATH (each must run); install one of them or pass PY=/path/to/python" >&2; exit 2; }; \
	  command -v $(PY) > /dev/null || { echo "error: PY=$(PY): no such command" >&2; exit 2; }; \
	  $(PY) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if (3, 10) <= v <= (3, 13) else "error: $(PY) is Python %d.%d; ltray supports $(lastword $(SUPPORTED)) to $(firstword $(SUPPORTED))" % v)' || exit 2; \
	  echo "creating $(VENV) with $$($(PY) -c 'import sys; print(sys.executable, sys.version.split()[0])')"; \
	  $(PY) -m venv $(VENV); }
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c $(LOCK) -e ".[$(EXTRAS)]"
	touch $@

setup: $(BIN)/ltray-installed

demo: setup
	$(BIN)/ltray sweep sweeps/demo.yaml $(if $(wildcard experiments/demo/experiment.json),--resume)
	$(BIN)/ltray analysis experiments/demo

# `make test-fast`: the Ray-free tests (core, formats, plan, analysis, checks), CPU-bound, in
# FAST_JOBS processes. `make test`: every test but the SLURM ones, Ray's end-to-end tests (marked
# `ray`, whose time is the CPU of starting processes: Ray's, drivers', trial workers') and the
# Ray-free ones in one run of TEST_JOBS processes, so that the Ray-free tests fill the cores while
# a Ray test waits. Each test file runs in one process (its module fixtures run once);
# tests/conftest.py hands out the slowest files first.
FAST_JOBS ?= 2
TEST_JOBS ?= 3
PYTEST := RAY_AUTH_MODE=disabled $(BIN)/python -m pytest -q --dist loadfile --no-loadscope-reorder

test: setup
	$(PYTEST) -m "not slurm" -n $(TEST_JOBS)

test-fast: setup
	$(PYTEST) -m "not ray and not slurm" -n $(FAST_JOBS)

# the batch script of `ltray slurm` on a private one-node SLURM (root; Debian's slurm-wlm and munge;
# 2 to 12 minutes, see README); .ci/run runs it after `make test`
test-slurm: setup
	$(PYTEST) -m slurm

# the lock resolves on every supported Python (pip --dry-run per Python; installs nothing)
check-lock: setup
	$(BIN)/python requirements/check_lock.py

bench: setup
	RAY_AUTH_MODE=disabled $(BIN)/python bench/run_all.py

.PHONY: setup demo test test-fast test-slurm check-lock bench
