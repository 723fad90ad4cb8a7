# Set-up and the two commands of the README: `make demo` and `make test`.
# Finds a Python >= 3.12 (PATH first, then pyenv's versions) and builds .venv with it.
SHELL := /bin/bash
VENV := .venv
PYTHON ?= $(shell for p in python3.14 python3.13 python3.12 $$HOME/.pyenv/versions/3.1[2-9]*/bin/python /root/.pyenv/versions/3.1[2-9]*/bin/python python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && { echo $$p; break; }; done)

.PHONY: demo test test-fast lint bench bench-paths clean

# the runtime only (make demo)
$(VENV)/.runtime: pyproject.toml
	@test -n "$(PYTHON)" || { echo "hierbayes needs Python >= 3.12; none found on PATH or under ~/.pyenv/versions" >&2; exit 1; }
	@echo "Using $(PYTHON) ($$($(PYTHON) --version))"
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	@echo "Installing hierbayes and its runtime (PyMC, nutpie, ArviZ, ...): about 30 s on a fresh machine"
	set -o pipefail; $(VENV)/bin/python -m pip install -e . 2>&1 | { grep -E "^(Collecting|Successfully|ERROR)" || true; }
	@touch $@

# the runtime and the test tools (make test)
$(VENV)/.installed: $(VENV)/.runtime
	@echo "Installing the test tools (bambi, statsmodels, mkdocs, ...): about 2 minutes on a fresh machine"
	set -o pipefail; $(VENV)/bin/python -m pip install -e ".[test]" 2>&1 | { grep -E "^(Collecting|Successfully|ERROR)" || true; }
	@touch $@

demo: $(VENV)/.runtime
	$(VENV)/bin/hierbayes demo sleepstudy

# everything CI runs: lint, then unit, statistical and integration tests and the doctests
test: $(VENV)/.installed lint
	$(VENV)/bin/python -m pytest -n 2 --dist loadfile

# the development loop: lint and the unit tests only (under 2 minutes)
test-fast: $(VENV)/.installed lint
	$(VENV)/bin/python -m pytest -n 2 --dist loadfile tests/unit

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check hierbayes tests bench validation docs/_hooks

bench: $(VENV)/.installed
	$(VENV)/bin/python bench/run.py --suite quick

# which sampler path (compiled-model cache, or nutpie's public API) each quick-suite model takes here
bench-paths: $(VENV)/.installed
	$(VENV)/bin/python bench/paths.py --suite quick

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
