"""The fallback for when the kernel does not end orphans: children watch the supervisor."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from app.parentwatch import SUPERVISOR_PID_ENV, watch_parent
from tests.live import process_gone, wait_until

# A stand-in supervisor: starts a child in its own process group (as children.py does, but
# without PR_SET_PDEATHSIG), and the child starts a pool-like worker; both call watch_parent().
SUPERVISOR = textwrap.dedent("""
    import os, subprocess, sys, time
    env = dict(os.environ, MODELDEPOT_SUPERVISOR_PID=str(os.getpid()))
    child = subprocess.Popen([sys.executable, sys.argv[1], "child", sys.argv[2]], env=env,
                             process_group=0)
    time.sleep(3600)
""")
CHILD = textwrap.dedent("""
    import subprocess, sys, time
    from app.parentwatch import watch_parent
    assert watch_parent()
    if sys.argv[1] == "child":
        subprocess.Popen([sys.executable, sys.argv[0], "worker", sys.argv[2]])
    with open(sys.argv[2], "a") as f:
        print(__import__("os").getpid(), file=f)
    time.sleep(3600)
""")


@pytest.mark.slow
def test_children_and_their_workers_exit_when_the_supervisor_dies(tmp_path: Path) -> None:
    (tmp_path / "supervisor.py").write_text(SUPERVISOR)
    (tmp_path / "child.py").write_text(CHILD)
    pids = tmp_path / "pids"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2]))
    sup = subprocess.Popen([sys.executable, str(tmp_path / "supervisor.py"),
                            str(tmp_path / "child.py"), str(pids)], env=env)
    try:
        wait_until(lambda: pids.exists() and len(pids.read_text().split()) == 2, 30, "started")
        started = [int(p) for p in pids.read_text().split()]
        sup.send_signal(signal.SIGKILL)
        sup.wait()
        wait_until(lambda: all(process_gone(p) for p in started), 2.0, "orphans gone")
    finally:
        if sup.poll() is None:
            sup.kill()
            sup.wait()
        for pid in [int(p) for p in pids.read_text().split()] if pids.exists() else []:
            if not process_gone(pid):
                os.kill(pid, signal.SIGKILL)


def test_without_a_supervisor_there_is_nothing_to_watch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SUPERVISOR_PID_ENV, raising=False)
    assert watch_parent() is False
    monkeypatch.setenv(SUPERVISOR_PID_ENV, "not a pid")
    assert watch_parent() is False
