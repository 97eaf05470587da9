# The two commands of README: `make images` (the main job) and `make test` (the suite).
# Each does its own set-up: virtualenv, Python deps, Docker engine, emulation, registry.
SHELL := /bin/sh
VENV := .venv
PY := $(VENV)/bin/python
# Where image bases come from: the offline mirror built from the Debian archive (works
# everywhere a Debian archive is reachable), or upstream (docker.io etc.).
BASE ?= mirror

.PHONY: images test env venv tools lint clean-cluster

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[test]'
	touch $@

venv: $(VENV)/.installed

# Engine, binfmt, registry; then the base mirror and a per-platform run check.
env: venv
	sh env/bootstrap.sh
	if [ "$(BASE)" = mirror ]; then $(PY) -m buildtools mirror; fi
	$(PY) -m buildtools doctor

# Linters and the Kubernetes binaries the tests need (each cached after the first run).
tools:
	sh env/lint-tools.sh
	sh env/lint-workflows.sh
	sh env/k8s-build.sh

images: env
	$(PY) -m buildtools build --base $(BASE) --report build-report.json

test: env tools
	$(PY) -m pytest

lint: venv tools
	$(PY) -m pytest tests/test_lint.py
