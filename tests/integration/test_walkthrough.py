"""The walkthrough of docs/shipping-a-class.md, run line by line against the test run's broker.

The fenced bash block of that section is the script: each line runs in bash (with
`set -o pipefail`) in a fresh folder beside a link to `demo/`, `triage` on the PATH being this
interpreter's `python -m triage.cli`, and the test's broker and topic prefix in the
environment (`TRIAGE_*`). A line ending in `&` is a long-running process, stopped at the end;
every other line must exit 0. Before `triage publish` the test waits for every voter and the
shadow to announce themselves, before `triage shadow-report` for every text's result and
shadow score: conditions, not sleeps. The section missing, a step dropped from it, or a line
failing fails the test, so the page and the code cannot drift apart.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, wait_for_registry, wait_until

from triage.consumers.settings import ClassifierSettings
from triage.core.registry.store import read_registry
from triage.core.settings import CommonSettings
from triage.tools.results import read_labels
from triage.tools.shadow import read_scores

pytestmark = pytest.mark.integration

PAGE = ROOT / "docs" / "shipping-a-class.md"
LABEL, VERSION = "refund_request", "2"
# Every step of issue 24's walkthrough, in this order, must be in the block.
STEPS = [
    "triage train ",
    "triage compare ",
    "--shadow &",
    "triage publish ",
    "triage correct ",
    "triage shadow-report ",
    "triage gate ",
    "triage promote ",
    "triage classifiers",
]


def walkthrough(page: str) -> list[str]:
    """The command lines of the section's ```bash block (comments and blank lines dropped)."""
    match = re.search(r"^## The walkthrough\n(.*?)(?=^## )", page, re.S | re.M)
    assert match, "docs/shipping-a-class.md has no '## The walkthrough' section"
    block = re.search(r"^```bash\n(.*?)^```", match.group(1), re.S | re.M)
    assert block, "the walkthrough section has no ```bash block"
    lines = [line.strip() for line in block.group(1).splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def test_the_walkthrough_names_every_step_in_order():
    lines = walkthrough(PAGE.read_text(encoding="utf-8"))
    where = [next(i for i, line in enumerate(lines) if step in line) for step in STEPS]
    assert where == sorted(where), list(zip(STEPS, where, strict=True))


def shim(bin_dir: Path) -> None:
    """`triage` on the PATH: this interpreter's CLI (the venv's `triage` script may not exist)."""
    bin_dir.mkdir()
    script = bin_dir / "triage"
    script.write_text(f'#!/bin/sh\nexec {sys.executable} -m triage.cli "$@"\n', encoding="utf-8")
    script.chmod(0o755)


def announced() -> bool:
    return read_registry(ClassifierSettings()).announcement(LABEL, VERSION) is not None


def scored(ids: set[str]) -> bool:
    results = {r.id for r in read_labels(CommonSettings()) if r.id in ids}
    shadow = {s.id for s in read_scores(CommonSettings()) if s.versions.get(LABEL) == VERSION}
    return results == ids and ids <= shadow


@pytest.mark.timeout(420)
def test_the_walkthrough_ships_a_class(env, tmp_path):
    lines = walkthrough(PAGE.read_text(encoding="utf-8"))
    work, logs = tmp_path / "work", tmp_path / "logs"
    work.mkdir(), logs.mkdir()
    (work / "demo").symlink_to(ROOT / "demo")
    shim(tmp_path / "bin")
    run_env = os.environ | env | {"PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}
    background: list[subprocess.Popen] = []
    out: dict[str, subprocess.CompletedProcess] = {}
    try:
        for n, line in enumerate(lines):
            if line.endswith("&"):
                log = (logs / f"{n}.log").open("ab")
                background.append(
                    subprocess.Popen(
                        ["bash", "-c", f"exec {line[:-1]}"],
                        cwd=work,
                        env=run_env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
                continue
            if line.startswith("triage publish"):
                wait_for_registry(set(os.listdir(work / "models" / "v1")), timeout_s=180)
                wait_until(announced, 180, f"{LABEL}@{VERSION} to announce itself")
            if line.startswith("triage shadow-report"):
                ids = set((work / "ids.txt").read_text().split())
                wait_until(lambda ids=ids: scored(ids), 240, "every text's result and shadow score")
            done = subprocess.run(
                ["bash", "-o", "pipefail", "-c", line],
                cwd=work,
                env=run_env,
                capture_output=True,
                text=True,
                timeout=240,
            )
            assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
            out[line.split()[1]] = done
            assert not [p for p in background if p.poll() is not None], logs_of(logs)
    finally:
        for proc in background:
            proc.terminate()
        for proc in background:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()

    # What the page's comments say each step shows.
    assert len((work / "ids.txt").read_text().split()) == 150
    for step in ("shadow-report", "promote"):  # judged every text, then promoted
        assert "150 texts scored, 150 with a committed result" in out[step].stdout
    print(*(f"$ triage {k}\n{v.stdout}" for k, v in out.items()), sep="\n")
    listed = run_json(run_env, work)
    mine = {r["version"]: r for r in listed if r["label"] == LABEL}
    assert mine[VERSION]["owner"]["team"] == "payments", mine
    assert mine[VERSION]["role"] in ("voting", "scheduled"), mine


def run_json(run_env: dict[str, str], work: Path) -> list[dict]:
    done = subprocess.run(
        ["triage", "classifiers", "--json"], cwd=work, env=run_env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def logs_of(logs: Path) -> str:
    return "\n".join(f"{p.name}:\n{p.read_text(errors='replace')[-2000:]}" for p in logs.iterdir())
