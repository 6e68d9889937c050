"""The real supervisor as a subprocess: `python -m app serve` on a temp data dir and free ports."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from app.supervisor.discovery import read_server_file
from tests.live import child_pids, free_ports, server_env, stop, wait_until

START_TIMEOUT = 60.0  # generous: a cold CI box imports scikit-learn slowly


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


@dataclass
class Serve:
    home: Path
    registry_port: int
    inference_port: int
    log: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        return [sys.executable, "-m", "app", "serve", "--home", str(self.home),
                "--registry-port", str(self.registry_port),
                "--inference-port", str(self.inference_port), *self.args]

    def env(self) -> dict[str, str]:
        env = server_env(self.home, **self.extra_env)
        for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
            if name not in self.extra_env:
                env.pop(name, None)
        return env

    def start(self) -> Serve:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.command(), env=self.env(), stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT)
        return self

    @property
    def server_file(self) -> Path:
        return self.home / "server.json"

    def info(self) -> dict[str, Any]:
        return read_server_file(self.server_file) or {}

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def child_pids(self) -> dict[str, int]:
        return child_pids(self.info())

    def ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"serve exited with {self.proc.returncode}:\n{self.output()}")
        info = self.info()
        return info.get("state") == "ready" and info.get("pid") == self.proc.pid

    def wait_ready(self, timeout: float = START_TIMEOUT) -> dict[str, int]:
        wait_until(self.ready, timeout, "both servers ready")
        return self.child_pids()

    def registry_health(self) -> int | None:
        return http_status(f"http://127.0.0.1:{self.registry_port}/api/v1/health")

    def inference_ready(self) -> int | None:
        return http_status(f"http://127.0.0.1:{self.inference_port}/v2/health/ready")

    def cleanup(self) -> None:
        """Leave nothing behind, whatever the test did."""
        pids = list(self.child_pids().values())
        if self.proc is not None:
            stop(self.proc, timeout=20)
        for pid in pids:
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)


@pytest.fixture
def serve_factory(tmp_path: Path) -> Iterator[Any]:
    made: list[Serve] = []

    def make(home: Path | None = None, **kwargs: Any) -> Serve:
        serve = Serve(home or tmp_path / "home", *free_ports(2),
                      tmp_path / f"serve-{len(made)}.log", **kwargs)
        made.append(serve)
        return serve

    yield make
    for serve in made:
        serve.cleanup()


@pytest.fixture
def running(serve_factory: Any) -> Serve:
    serve: Serve = serve_factory().start()
    serve.wait_ready()
    return serve
