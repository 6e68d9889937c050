"""The built PyInstaller binary, run as a user would run it: no Python on PATH, another cwd.

Bundle tests run only when asked for (`pytest -m bundle`, or by naming tests/bundle): a plain
`pytest` leaves them out, because they need `pyinstaller build.spec` first (.ci/run does both).
When they are asked for, a missing binary is a failure, never a skip: a CI run that forgot to
build must not pass.

The binary is dist/modeldepot (or MODELDEPOT_BINARY); the onedir build is
dist/modeldepot-dir/modeldepot (or MODELDEPOT_ONEDIR_BINARY).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.supervisor.discovery import read_server_file
from tests.live import (
    child_pids,
    free_ports,
    process_gone,
    process_tree,
    stop,
    wait_until,
)

ROOT = Path(__file__).resolve().parents[2]
BINARY_ENV = "MODELDEPOT_BINARY"
ONEDIR_ENV = "MODELDEPOT_ONEDIR_BINARY"
START_TIMEOUT = 60.0  # generous: a onefile binary unpacks ~100 MB before Python even starts


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    asked = "bundle" in (config.getoption("markexpr") or "") or any(
        "tests/bundle" in str(arg).replace(os.sep, "/") for arg in config.args)
    if asked:
        return
    skipped = [item for item in items if item.get_closest_marker("bundle")]
    if skipped:
        items[:] = [item for item in items if not item.get_closest_marker("bundle")]
        config.hook.pytest_deselected(items=skipped)


def require_binary(path: Path) -> Path:
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"No built binary at {path}. Build it with `pyinstaller build.spec` "
                    f"(or point {BINARY_ENV} at one); bundle tests never skip.", pytrace=False)
    return path


@pytest.fixture(scope="session")
def binary() -> Path:
    return require_binary(Path(os.environ.get(BINARY_ENV) or ROOT / "dist/modeldepot").resolve())


@pytest.fixture(scope="session")
def onedir_binary() -> Path:
    return require_binary(Path(os.environ.get(ONEDIR_ENV)
                               or ROOT / "dist/modeldepot-dir/modeldepot").resolve())


def minimal_environment(base: Path) -> dict[str, str]:
    """HOME, the data dir, our own TMPDIR (to find unpack folders) and a PATH with no Python."""
    for name in ("home", "data", "tmp", "bin", "cwd"):
        (base / name).mkdir(parents=True, exist_ok=True)
    return {
        "HOME": str(base / "home"),
        "MODELDEPOT_HOME": str(base / "data"),
        "TMPDIR": str(base / "tmp"),
        "PATH": str(base / "bin"),  # empty: nothing to fall back on, Python least of all
    }


def alive(pid: int) -> bool:
    return not process_gone(pid)


def command_line(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [w.decode(errors="replace") for w in f.read().split(b"\0") if w]
    except OSError:
        return []


@dataclass
class Bundle:
    """One `modeldepot serve` of the built binary in a minimal environment."""

    binary: Path
    base: Path
    registry_port: int = 0
    inference_port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    seen: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        if not (self.registry_port and self.inference_port):
            self.registry_port, self.inference_port = free_ports(2)

    @property
    def env(self) -> dict[str, str]:
        return minimal_environment(self.base)

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def tmp(self) -> Path:
        return self.base / "tmp"

    @property
    def log(self) -> Path:
        return self.base / "serve.log"

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """A one-shot command of the binary (version, token, paths...) in the same environment."""
        return subprocess.run([str(self.binary), *args], env=self.env, cwd=self.base / "cwd",
                              capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def start(self, extra_env: dict[str, str] | None = None,
              wrapper: list[str] | None = None) -> Bundle:
        """`wrapper` runs first and must exec the command it is given (as systemd would)."""
        command = [*(wrapper or []), str(self.binary), "serve",
                   "--registry-port", str(self.registry_port),
                   "--inference-port", str(self.inference_port)]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(command, env=self.env | (extra_env or {}),
                                         cwd=self.base / "cwd",
                                         stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT)
        return self

    def output(self) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return text[-6000:]

    def info(self) -> dict[str, Any]:
        return read_server_file(self.data / "server.json") or {}

    def child_pids(self) -> dict[str, int]:
        return child_pids(self.info())

    def ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"serve exited with {self.proc.returncode}:\n{self.output()}")
        self.remember()
        return self.info().get("state") == "ready" and self.answers()

    def answers(self) -> bool:
        try:
            return (httpx.get(f"{self.registry}/api/v1/health", timeout=2).status_code == 200
                    and httpx.get(f"{self.inference}/v2/health/ready", timeout=2).status_code
                    == 200)
        except httpx.HTTPError:
            return False

    def wait_ready(self, timeout: float = START_TIMEOUT) -> dict[str, int]:
        wait_until(self.ready, timeout, f"both servers ready\n{self.output()}", interval=0.1)
        return self.child_pids()

    def remember(self) -> None:
        """Note every process of the tree, so the end can prove none is left."""
        if self.proc is not None:
            self.seen.update(process_tree(self.proc.pid))

    @property
    def registry(self) -> str:
        return f"http://127.0.0.1:{self.registry_port}"

    @property
    def inference(self) -> str:
        return f"http://127.0.0.1:{self.inference_port}"

    def token(self) -> str:
        """The token as a client reads it: from the data dir, where the first start wrote it."""
        return (self.data / "token").read_text().strip()

    def unpack_dirs(self) -> list[str]:
        return sorted(p.name for p in self.tmp.glob("_MEI*"))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        assert self.proc is not None
        self.remember()
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def cleanup(self) -> None:
        """Leave nothing behind, whatever the test did."""
        if self.proc is not None:
            self.remember()
            stop(self.proc, timeout=20)
        for pid in self.seen:
            if alive(pid) and command_line(pid)[:1] == [str(self.binary)]:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)


@pytest.fixture
def bundle_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    made: list[Bundle] = []

    def make(binary: Path) -> Bundle:
        bundle = Bundle(binary, tmp_path_factory.mktemp("bundle"))
        made.append(bundle)
        return bundle

    yield make
    for bundle in made:
        bundle.cleanup()
