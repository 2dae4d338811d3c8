# Two entry points (README quickstart): `make demo` runs the main job, `make test` the test suite.
# Each creates or updates .venv, installing the pinned CPU torch first so no CUDA build is pulled.
PY ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q -c constraints.txt torch
	$(VENV)/bin/pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

.PHONY: venv demo test
venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/prunekit demo --resume

test: $(STAMP)
	$(VENV)/bin/python -m pytest
