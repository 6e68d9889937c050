"""systemd integration: sd_notify messages on a socket the test binds, and the unit file."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from app.supervisor.notify import Notifier
from tests.supervisor.conftest import Serve

UNIT = Path(__file__).parents[2] / "packaging" / "systemd" / "modeldepot.service"


def _notify_socket(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + address[1:] if address.startswith("@") else address)
    sock.settimeout(0.2)
    return sock


def _receive(sock: socket.socket, until: str, timeout: float) -> list[str]:
    messages: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            messages.append(sock.recv(4096).decode())
        except TimeoutError:
            continue
        if any(until in m.split("\n") for m in messages):
            return messages
    raise AssertionError(f"no {until} within {timeout} s; got {messages}")


def test_notifier_speaks_to_abstract_and_path_sockets(tmp_path: Path) -> None:
    for address in (f"@modeldepot-test-{uuid.uuid4().hex}", str(tmp_path / "n.sock")):
        with _notify_socket(address) as sock:
            notifier = Notifier({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "4000000"})
            notifier.ready("Ready: both")
            notifier.watchdog(now=100.0)
            notifier.watchdog(now=101.0)  # not due yet: half of 4 s
            notifier.watchdog(now=102.0)
            got = [sock.recv(4096).decode() for _ in range(3)]
        assert got == ["READY=1\nSTATUS=Ready: both", "WATCHDOG=1", "WATCHDOG=1"]


def test_without_notify_socket_nothing_is_sent() -> None:
    notifier = Notifier({})
    assert not notifier.enabled and notifier.watchdog_interval is None
    assert notifier.send("READY=1") is False


def test_watchdog_for_another_process_is_not_ours() -> None:
    assert Notifier({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}).watchdog_interval is None


@pytest.mark.slow
def test_serve_notifies_ready_status_watchdog_and_stopping(serve_factory: Any) -> None:
    address = f"@modeldepot-test-{uuid.uuid4().hex}"
    with _notify_socket(address) as sock:
        serve: Serve = serve_factory(extra_env={"NOTIFY_SOCKET": address,
                                                "WATCHDOG_USEC": "1000000"}).start()
        messages = _receive(sock, "READY=1", 60)
        ready = next(m for m in messages if "READY=1" in m.split("\n"))
        assert "STATUS=Ready: registry healthy, inference healthy" in ready.split("\n")
        messages += _receive(sock, "WATCHDOG=1", 5)
        # A restart shows in STATUS= lines.
        os.kill(serve.child_pids()["inference"], signal.SIGKILL)
        later = _receive(sock, "STATUS=Ready: registry healthy, inference healthy", 10)
        assert any(line.startswith("STATUS=Degraded") for m in later for line in m.split("\n"))
        assert serve.proc is not None
        serve.proc.send_signal(signal.SIGTERM)
        stopping = _receive(sock, "STOPPING=1", 10)
        assert serve.proc.wait(30) == 0
    assert not any("READY=1" in m.split("\n") for m in stopping + later)


def _systemd_analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "systemd"],
                       capture_output=True, timeout=600)
        tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed and cannot be (apt-get install systemd)")
    return tool


def test_the_unit_file_verifies(tmp_path: Path) -> None:
    tool = _systemd_analyze()
    text = UNIT.read_text()
    assert "ExecStart=/opt/modeldepot/modeldepot serve" in text
    # verify checks that ExecStart exists; point it at a stand-in binary.
    stand_in = tmp_path / "modeldepot"
    stand_in.write_text("#!/bin/sh\nexit 0\n")
    stand_in.chmod(0o755)
    unit = tmp_path / "modeldepot.service"
    unit.write_text(text.replace("/opt/modeldepot/modeldepot", str(stand_in)))
    result = subprocess.run([tool, "verify", "--man=no", str(unit)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "modeldepot.service" not in result.stdout + result.stderr, result.stderr


def test_the_unit_has_what_the_supervisor_relies_on() -> None:
    text = UNIT.read_text()
    lines = {line.split("=", 1)[0]: line.split("=", 1)[1]
             for line in text.splitlines() if "=" in line and not line.startswith("#")}
    assert lines["Type"] == "notify"
    assert lines["NotifyAccess"] == "all"  # onefile: Python runs in a child of the bootloader
    assert "\nEnvironment=MODELDEPOT_HOME=/var/lib/modeldepot\n" in text
    assert lines["StateDirectory"] == "modeldepot"
    assert lines["User"] == "modeldepot"
    assert lines["Restart"] == "on-failure"
    assert "MemoryDenyWriteExecute" not in lines
    assert int(lines["LimitNOFILE"]) >= 16384  # far past systemd's default soft limit of 1024
    for key in ("ProtectSystem", "NoNewPrivileges", "PrivateTmp", "RestrictAddressFamilies",
                "WatchdogSec"):
        assert key in lines
