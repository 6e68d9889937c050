"""The supervisor restarts a hung child, never a busy one (app/supervisor/progress.py).

A 'child' here is a real process on a real port that accepts connections into its backlog and
never answers, as a server whose event loop is stuck or swamped looks from outside: one burns CPU
(working), the other does not (hung).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.config import Settings
from app.supervisor import loop
from app.supervisor.children import ChildSpec
from app.supervisor.notify import Notifier
from app.supervisor.progress import sample, working
from tests.live import free_port, wait_until
from tests.supervisor.conftest import Serve

SILENT_SERVER = """
import socket, sys, time
sock = socket.socket()
sock.bind(("127.0.0.1", int(sys.argv[1])))
sock.listen(16)
print("listening", flush=True)
if sys.argv[2] == "busy":
    while True:
        sum(range(10_000))
time.sleep(600)
"""
PERIOD = 2.0


@pytest.fixture
def fast_watch(monkeypatch: pytest.MonkeyPatch) -> None:
    """The watch loop's periods, shortened so a test takes seconds (the rule is unchanged)."""
    monkeypatch.setattr(loop, "UNRESPONSIVE_SECONDS", PERIOD)
    monkeypatch.setattr(loop, "PROBE_TIMEOUT", 0.3)
    monkeypatch.setattr(loop, "CHECK_INTERVAL", 0.3)


def silent_server(port: int, mode: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", SILENT_SERVER, str(port), mode],
                            stdout=subprocess.PIPE, process_group=0)
    assert proc.stdout is not None and proc.stdout.readline() == b"listening\n"
    return proc


@pytest.fixture
def watched(tmp_path: Path, fast_watch: None, request: pytest.FixtureRequest,
            caplog: pytest.LogCaptureFixture
            ) -> Iterator[tuple[loop.Supervisor, subprocess.Popen[bytes]]]:
    """A supervisor watching one silent server (request.param: busy or idle), its log caught."""
    caplog.set_level(logging.INFO, "app.supervisor.loop")
    port = free_port()
    settings = Settings(home=tmp_path / "home", registry_port=port, token="t" * 32)
    spec = ChildSpec("silent", "registry_port", "/health", "/health", "silent server")
    sup = loop.Supervisor(settings, Notifier({}), specs=(spec,))
    proc = silent_server(port, request.param)
    child = sup.children[0]
    child.process, child.state, child.ready = proc, "healthy", True
    yield sup, proc
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.stdout is not None
    proc.stdout.close()


def watch_until(sup: loop.Supervisor, caplog: pytest.LogCaptureFixture, text: str,
                seconds: float) -> bool:
    """Run the watch loop's checks for up to `seconds`; True once `text` was logged."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sup.keep_children_alive()
        if text in caplog.text:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("watched", ["busy"], indirect=True)
def test_a_child_that_is_working_is_never_restarted(
        watched: tuple[loop.Supervisor, subprocess.Popen[bytes]],
        caplog: pytest.LogCaptureFixture) -> None:
    sup, proc = watched
    assert not watch_until(sup, caplog, "neither answered nor used CPU", 2.5 * PERIOD)
    assert proc.poll() is None
    assert sup.children[0].state == "unresponsive"
    assert "is working (using CPU); not restarting it" in caplog.text
    # The same process, stopped: now it is hung, and it is restarted.
    os.kill(proc.pid, signal.SIGSTOP)
    assert watch_until(sup, caplog, "neither answered nor used CPU", 3 * PERIOD)
    assert proc.wait(10) == -signal.SIGKILL


@pytest.mark.parametrize("watched", ["idle"], indirect=True)
def test_a_child_that_neither_answers_nor_works_is_restarted(
        watched: tuple[loop.Supervisor, subprocess.Popen[bytes]],
        caplog: pytest.LogCaptureFixture) -> None:
    sup, proc = watched
    assert watch_until(sup, caplog, "neither answered nor used CPU", 3 * PERIOD)
    assert proc.wait(10) == -signal.SIGKILL


def test_cpu_samples_tell_a_busy_process_from_an_idle_one() -> None:
    before = sample(os.getpid(), time.monotonic())
    end = time.monotonic() + 0.3
    while time.monotonic() < end:
        pass
    after = sample(os.getpid(), time.monotonic())
    assert working(before, after)
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        time.sleep(0.5)  # past its start-up, which does use CPU
        first = sample(idle.pid, time.monotonic())
        time.sleep(0.5)
        assert not working(first, sample(idle.pid, time.monotonic()))
    finally:
        idle.kill()
        idle.wait()


@pytest.mark.slow
def test_a_hung_registry_is_restarted_by_serve(running: Serve) -> None:
    """The end-to-end case: SIGSTOP freezes the real registry; serve replaces it."""
    old = running.child_pids()["registry"]
    os.kill(old, signal.SIGSTOP)
    wait_until(lambda: running.child_pids().get("registry") not in (None, old)
               and running.registry_health() == 200, 60, "a new registry answers")
    assert "neither answered nor used CPU" in running.output()
