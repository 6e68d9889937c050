"""The built PyInstaller binary, run as a user would run it: no Python on PATH, another cwd.

Bundle tests run only when asked for (`pytest -m bundle`, or by naming tests/bundle): a plain
`pytest` leaves them out, because they need `pyinstaller build.spec` first (.ci/run does both).
When they are asked for, a missing binary is a failure, never a skip: a CI run that forgot to
build must not pass.

The binary is dist/modeldepot (or MODELDEPOT_BINARY); the onedir build is
dist/modeldepot-dir/modeldepot (or MODELDEPOT_ONEDIR_BINARY).

A binary for another architecture (packaging/build-linux-arm64.sh's aarch64 build on an x86-64
machine) runs under qemu-user through binfmt_misc. Then every wait is scaled by
MODELDEPOT_BUNDLE_TIME_FACTOR (at most MAX_TIME_FACTOR, so no test passes only because a wait grew
without bound), QEMU_LD_PREFIX reaches the binary, and the tests marked `reads_proc_exe` are
deselected: /proc/PID/exe of an emulated process names the emulator, not the binary.
"""

from __future__ import annotations

import contextlib
import os
import platform
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
TIME_FACTOR_ENV = "MODELDEPOT_BUNDLE_TIME_FACTOR"
MAX_TIME_FACTOR = 10.0
# What an emulated binary needs from the environment: qemu-user finds the aarch64 glibc (and the
# ARM /proc/cpuinfo) under this prefix. A native binary never reads it.
PASSED_THROUGH = ("QEMU_LD_PREFIX",)
# ELF e_machine of the architectures platform.machine() names.
ELF_MACHINES = {"x86_64": 62, "aarch64": 183}
PROC_EXE_REASON = ("deselected under emulation: reads /proc/PID/exe, which names qemu-user "
                   "for an emulated process, not the binary")


def time_factor() -> float:
    """How much slower than native the binary runs: MODELDEPOT_BUNDLE_TIME_FACTOR, 1 if unset."""
    text = os.environ.get(TIME_FACTOR_ENV, "").strip()
    try:
        factor = float(text) if text else 1.0
    except ValueError:
        raise pytest.UsageError(f"{TIME_FACTOR_ENV}={text!r} is not a number") from None
    if not 1.0 <= factor <= MAX_TIME_FACTOR:
        raise pytest.UsageError(f"{TIME_FACTOR_ENV}={text} is outside 1..{MAX_TIME_FACTOR:g}")
    return factor


def scaled(seconds: float) -> float:
    """A wait for the binary to do something, scaled for emulation."""
    return seconds * time_factor()


START_TIMEOUT = 60.0  # generous: a onefile binary unpacks ~100 MB before Python even starts


def elf_machine(path: Path) -> int | None:
    """The ELF e_machine field of `path`; None if it is not an ELF file."""
    try:
        with path.open("rb") as f:
            header = f.read(20)
    except OSError:
        return None
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    return int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")


def emulated(path: Path) -> bool:
    """True when `path` is a program for another architecture than this machine's."""
    machine = elf_machine(path)
    return machine is not None and machine != ELF_MACHINES.get(platform.machine())


def configured_binary() -> Path:
    return Path(os.environ.get(BINARY_ENV) or ROOT / "dist/modeldepot").resolve()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "reads_proc_exe: relies on /proc/PID/exe naming the binary "
                            "(deselected when the binary runs under emulation)")
    config.addinivalue_line("markers", "arm64: compares the aarch64 binary with the native one "
                            "(packaging/build-linux-arm64.sh builds it; run with -m arm64)")


OPT_IN_MARKERS = ("bundle", "arm64")
_proc_exe_deselected = pytest.StashKey[list[str]]()


def deselect(config: pytest.Config, items: list[pytest.Item], gone: list[pytest.Item]) -> None:
    if gone:
        items[:] = [item for item in items if item not in gone]
        config.hook.pytest_deselected(items=gone)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    time_factor()  # a bad setting stops the run before anything starts
    markexpr = config.getoption("markexpr") or ""
    named = any("tests/bundle" in str(arg).replace(os.sep, "/") for arg in config.args)
    for marker in OPT_IN_MARKERS:
        if marker not in markexpr and not named:
            deselect(config, items, [item for item in items if item.get_closest_marker(marker)])
    if emulated(configured_binary()):
        gone = [item for item in items if item.get_closest_marker("reads_proc_exe")]
        config.stash[_proc_exe_deselected] = [item.nodeid for item in gone]
        deselect(config, items, gone)


def pytest_report_collectionfinish(config: pytest.Config) -> list[str]:
    gone = config.stash.get(_proc_exe_deselected, [])
    return [f"{nodeid}: {PROC_EXE_REASON}" for nodeid in gone]


def require_binary(path: Path) -> Path:
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"No built binary at {path}. Build it with `pyinstaller build.spec` "
                    f"(or point {BINARY_ENV} at one); bundle tests never skip.", pytrace=False)
    return path


@pytest.fixture(scope="session")
def binary() -> Path:
    return require_binary(configured_binary())


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
    } | {name: os.environ[name] for name in PASSED_THROUGH if name in os.environ}


def alive(pid: int) -> bool:
    return not process_gone(pid)


def command_line(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [w.decode(errors="replace") for w in f.read().split(b"\0") if w]
    except OSError:
        return []


def runs(pid: int, binary: Path) -> bool:
    """`pid` runs `binary`: its first word, or under qemu-user's binfmt entry (flag P), where the
    emulator comes first, the second or third (the program's path, then its argv[0])."""
    return str(binary) in command_line(pid)[:3]


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
                              capture_output=True, text=True, timeout=scaled(timeout),
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
            return all(httpx.get(url, timeout=scaled(2)).status_code == 200 for url in (
                f"{self.registry}/api/v1/health", f"{self.inference}/v2/health/ready"))
        except httpx.HTTPError:
            return False

    def wait_ready(self, timeout: float = START_TIMEOUT) -> dict[str, int]:
        wait_until(self.ready, scaled(timeout), f"both servers ready\n{self.output()}",
                   interval=0.1)
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
        return self.proc.wait(scaled(timeout))

    def cleanup(self) -> None:
        """Leave nothing behind, whatever the test did."""
        if self.proc is not None:
            self.remember()
            stop(self.proc, timeout=scaled(20))
        for pid in self.seen:
            if alive(pid) and runs(pid, self.binary):
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
