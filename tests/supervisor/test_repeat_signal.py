"""A stop request repeated at once is one request (a onefile launcher forwards the Ctrl+C the
terminal already delivered); one repeated later means "stop now"."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from app.config import Settings
from app.supervisor import loop
from app.supervisor.children import INFERENCE
from app.supervisor.notify import Notifier

STUBBORN = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(60)")


def test_a_duplicate_signal_is_not_a_second_request(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(home=tmp_path / "home", token="t" * 32)
    sup = loop.Supervisor(settings, Notifier({}), specs=(INFERENCE,))
    child = sup.children[0]
    # A child that ignores SIGTERM: shutdown waits for it until asked again or STOP_GRACE.
    proc = child.process = subprocess.Popen([sys.executable, "-c", STUBBORN],
                                            stdout=subprocess.PIPE, process_group=0)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    sup._wake_r, sup._wake_w = socket.socketpair()
    for sock in (sup._wake_r, sup._wake_w):
        sock.setblocking(False)

    def send(delay: float) -> None:
        time.sleep(delay)
        sup.signal_queue.append(signal.SIGINT)
        sup._wake_w.send(b"\0")

    started = time.monotonic()
    for delay in (0.05, 1.0):  # the forwarded duplicate, then a real second Ctrl+C
        threading.Thread(target=send, args=(delay,), daemon=True).start()
    try:
        with caplog.at_level("WARNING"):
            sup.shutdown()
        elapsed = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        sup._wake_r.close()
        sup._wake_w.close()
    assert 1.0 <= elapsed < loop.STOP_GRACE / 2, elapsed
    assert "Asked again to stop" in caplog.text
