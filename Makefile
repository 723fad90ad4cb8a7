# Set-up and the two commands of the README: `make demo` and `make test`.
# Finds a Python >= 3.12 (PATH first, then pyenv's versions) and builds .venv with it.
SHELL := /bin/bash
VENV := .venv
PYTHON ?= $(shell for p in python3.14 python3.13 python3.12 $$HOME/.pyenv/versions/3.1[2-9]*/bin/python /root/.pyenv/versions/3.1[2-9]*/bin/python python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && { echo $$p; break; }; done)

.PHONY: demo test bench clean

$(VENV)/.installed: pyproject.toml
	@test -n "$(PYTHON)" || { echo "hierbayes needs Python >= 3.12; none found on PATH or under ~/.pyenv/versions" >&2; exit 1; }
	@echo "Using $(PYTHON) ($$($(PYTHON) --version))"
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e ".[test]"
	@touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/hierbayes demo sleepstudy

test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -n 2 --dist loadfile

bench: $(VENV)/.installed
	$(VENV)/bin/python bench/run.py --suite quick

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
