"""`make demo`'s story, run as a newcomer runs it (here on the test run's broker): five steps, a
result for every message at the accuracy the same models reach offline, no ERROR or WARNING
line, the services' logs in the file it names, and what to try next at the end."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from conftest import ROOT

pytestmark = pytest.mark.integration


def test_the_demo_tells_its_story_without_alarms(env, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "demo.run"],
        cwd=tmp_path,  # its models and logs go under ./.triage, as in a clone
        env=os.environ | env | {"PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=400,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert not [line for line in out.splitlines() if re.search(r"\b(ERROR|WARNING)\b", line)]
    steps = [line.split("]")[0] for line in done.stdout.splitlines() if line.startswith("[")]
    assert [s for s in steps if s[1:2].isdigit()] == [f"[{n}/5" for n in range(1, 6)]
    assert "10/10 classes vote" in done.stdout and "150/150 labelled" in done.stdout
    accuracy = re.search(r"150/150 messages labelled; accuracy (.*)% \(.*offline.*: (.*)%\)", out)
    assert accuracy is not None and accuracy[1] == accuracy[2]
    log = tmp_path / ".triage" / "demo-logs" / "pipeline.log"
    assert str(log.relative_to(tmp_path)) in done.stdout
    assert "ready: every class votes (10)" in log.read_text()
    last = done.stdout.strip().splitlines()[-5:]
    assert last[0] == "What to try next:" and "make serve" in last[1]
