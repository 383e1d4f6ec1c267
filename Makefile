# The README's commands. `make install` is what every other target runs first.
VENV := .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: install demo test test-unit lint schemas clean

install: $(VENV)/.installed .triage/kafka-libs/.ready

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e ".[dev]"
	touch $@

.triage/kafka-libs/.ready: $(VENV)/.installed triage/kafka_pom.xml
	$(PY) -c "from triage import kafka_local as k; k.ensure_jars(k.default_libs_dir())"
	touch $@

demo: install
	$(PY) -m demo.run

test: install
	$(VENV)/bin/pytest

test-unit: install
	$(VENV)/bin/pytest tests/unit

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

schemas: install
	$(PY) -m schemas.export

clean:
	-$(VENV)/bin/triage kafka stop
	rm -rf .triage
