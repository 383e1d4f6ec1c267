"""Schemathesis against a live `triage serve` on a real pipeline: requests generated from the
gateway's own `/openapi.json`, over every route it documents, every check on, a valid token set.

Whatever the schema calls valid must be accepted, whatever it calls invalid refused with a
documented 4xx, every answer must match its documented status and body schema, and nothing may
answer 500. The budget (examples per route, a fixed seed) keeps the run near a minute on a shared
2-core machine; docs/http-contract.md records what it found and why each exclusion stands.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_gateway import TOKEN, start_gateway, start_pipeline

pytestmark = pytest.mark.integration

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
CONFIG = Path(__file__).with_name("schemathesis.toml")  # the exclusions, each explained
EXAMPLES = 12  # per route and phase
SEED = 20261207  # the same requests each run: a failure reproduces


def test_every_route_of_the_openapi_document_holds_under_schemathesis(procs, demo_models, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{TOKEN}\n")
    start_pipeline(procs, demo_models)
    base = start_gateway(procs, "serve", tokens)
    command = [
        str(SCHEMATHESIS), "--config-file", str(CONFIG), "run", f"{base}/openapi.json",
        "--header", f"Authorization: Bearer {TOKEN}",
        "--max-examples", str(EXAMPLES),
        "--seed", str(SEED),
        "--workers", "1",
        "--request-timeout", "40",
        "--max-failures", "20",
        "--continue-on-failure",
        "--no-color",
        "--report", "junit", "--report-dir", str(tmp_path / "report"),
    ]  # fmt: skip
    env = os.environ | {"SCHEMATHESIS_HOOKS": "", "NO_COLOR": "1"}
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
    assert "16 selected / 16 total" in run.stdout  # every route documented was fuzzed
    print(run.stdout[-1500:])  # the run's summary, with `pytest -rP`
