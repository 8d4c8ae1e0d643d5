# `make demo` and `make test` set everything up themselves (a virtual environment in .venv).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export RNNKIT_DATA ?= $(abspath ../shared/data)

.PHONY: demo test bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "torch==2.13.0"   # the CPU build; never let a looser pin pull a CUDA build
	$(PY) -m pip install -q -e ".[test]"
	touch $@

demo: $(VENV)/.installed   # train on the embedded corpus (its default budget), then write a sample
	@run=runs/demo-$$(date +%Y%m%d-%H%M%S); \
	$(PY) -m rnnkit train --out $$run --no-progress && \
	$(PY) -m rnnkit generate $$run --prompt "def " --length 400 --temperature 0.8 --seed 0

test: $(VENV)/.installed
	$(PY) -m pytest -n 2 tests

bench: $(VENV)/.installed
	$(PY) -m rnnkit bench

clean:
	rm -rf $(VENV) .pytest_cache
