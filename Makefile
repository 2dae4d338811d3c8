# Two entry points (README quickstart): `make demo` runs the main job, `make test` the test suite.
# Each creates or updates .venv, installing the pinned CPU torch first so no CUDA build is pulled.
# `make demo` installs only what the demo needs (the `demo` extra: the core dependencies); `make test`
# (and .ci/run) installs the `dev` extra with every test dependency. pip's progress is shown.
PY ?= python3
VENV := .venv
DEMO_STAMP := $(VENV)/.installed-demo
DEV_STAMP := $(VENV)/.installed-dev
PIP := $(VENV)/bin/pip install --progress-bar on -c constraints.txt

$(VENV)/bin/python:
	$(PY) -m venv $(VENV)

$(DEMO_STAMP): pyproject.toml constraints.txt | $(VENV)/bin/python
	@echo ">>> installing torch (CPU) and prunekit's demo dependencies into $(VENV)"
	$(PIP) torch
	$(PIP) -e ".[demo]"
	touch $(DEMO_STAMP)

$(DEV_STAMP): pyproject.toml constraints.txt | $(VENV)/bin/python
	@echo ">>> installing torch (CPU) and prunekit's test dependencies into $(VENV)"
	$(PIP) torch
	$(PIP) -e ".[dev]"
	touch $(DEV_STAMP) $(DEMO_STAMP)

.PHONY: venv demo test
venv: $(DEV_STAMP)

demo: $(DEMO_STAMP)
	$(VENV)/bin/prunekit demo --resume

test: $(DEV_STAMP)
	$(VENV)/bin/python -m pytest
