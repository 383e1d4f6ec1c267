"""The liveness watchdog restarts a process whose main loop stopped making progress."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time

from triage.core.liveness import Liveness


def test_beats_keep_it_quiet_and_silence_fires_the_action_once():
    fired = threading.Event()
    watchdog = Liveness("test", 0.4, threading.Event(), action=fired.set).start()
    for _ in range(8):
        time.sleep(0.1)
        watchdog.beat()
    assert not fired.is_set()
    assert fired.wait(3)


def test_a_stalled_process_runs_its_own_command_line_again(tmp_path):
    # The real action, in a child process: it never beats, so it must come back as itself
    # (same pid, same arguments), and the second incarnation says so and exits.
    script = tmp_path / "stalls.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, sys, threading, time
            from triage.core.liveness import Liveness
            if os.environ.get("INCARNATION") == "2":
                print("again", os.getpid(), sys.argv[1:], flush=True)
                sys.exit(0)
            os.environ["INCARNATION"] = "2"
            print("first", os.getpid(), flush=True)
            Liveness("stalls", 0.3, threading.Event()).start()
            time.sleep(30)  # stuck
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script), "--flag", "x"],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ | {"INCARNATION": "1"},
    )
    first, again = done.stdout.splitlines()
    assert done.returncode == 0, done.stderr
    assert first.split()[1] == again.split()[1]  # the same process, re-executed
    assert again.endswith("['--flag', 'x']")
    assert "no progress for 0s" in done.stderr and "a restart of this process" in done.stderr
    assert "Thread" in done.stderr  # the stacks, to see where it was stuck


def test_a_stall_while_stopping_exits_with_status_1(tmp_path):
    script = tmp_path / "stuck_stopping.py"
    script.write_text(
        textwrap.dedent(
            """
            import threading, time
            from triage.core.liveness import Liveness
            stop = threading.Event()
            stop.set()
            Liveness("stuck", 0.3, stop).start()
            time.sleep(30)
            """
        )
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "then exit" in done.stderr
