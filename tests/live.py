"""Real server processes on loopback ephemeral ports, for tests that need real sockets."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.conftest import TOKEN


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` distinct free loopback ports (all held open while picking, so no two are equal)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before it was healthy")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{url} not healthy within {timeout}s")


def server_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELDEPOT_")}
    env.update(MODELDEPOT_HOME=str(home), MODELDEPOT_TOKEN=TOKEN, **extra)
    return env


HEALTH = {"registry": "/api/v1/health", "inference": "/v2/health/live"}


def server_log(home: Path, role: str, port: int) -> Path:
    return home.parent / f"{role}-{port}.log"


def launch(role: str, home: Path, port: int, **extra: str) -> subprocess.Popen[bytes]:
    """Start `python -m app <role>` on `port`, its log in `server_log(...)`: a stderr pipe that
    nobody reads would block the server once 64 KiB of log lines filled it."""
    home.parent.mkdir(parents=True, exist_ok=True)
    with server_log(home, role, port).open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "app", role, f"--{role}-port", str(port)],
            env=server_env(home, **extra), stdout=subprocess.DEVNULL, stderr=log,
        )


def start_server(role: str, home: Path, port: int, **extra: str) -> subprocess.Popen[bytes]:
    """`launch`, then wait until the server answers its health route."""
    proc = launch(role, home, port, **extra)
    try:
        wait_healthy(f"http://127.0.0.1:{port}{HEALTH[role]}", proc)
    except BaseException:
        stop(proc)
        raise
    return proc


def start_registry(home: Path, port: int, **extra: str) -> subprocess.Popen[bytes]:
    return start_server("registry", home, port, **extra)


def start_inference(home: Path, port: int, **extra: str) -> subprocess.Popen[bytes]:
    return start_server("inference", home, port, **extra)


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 10) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def process_gone(pid: int) -> bool:
    """True once `pid` no longer runs; a zombie awaiting its reaper counts as gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(interval)


def process_tree(root: int) -> list[int]:
    """`root` and every process below it (from /proc), zombies left out."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def child_pids(server_info: dict[str, Any]) -> dict[str, int]:
    """{role: pid} of the children a supervisor's server.json lists."""
    children = server_info.get("children", {})
    return {role: c["pid"] for role, c in children.items() if c.get("pid")}


@contextlib.contextmanager
def flooding(call: Callable[[], Any]) -> Iterator[list[str]]:
    """Run `call` over and over in a thread for the block (predictions through a swap); yields
    the messages of the calls that failed, complete once the block is left."""
    from app.client import ClientError

    failures: list[str] = []
    stopping = threading.Event()

    def flood() -> None:
        while not stopping.is_set():
            try:
                call()
            except ClientError as exc:
                failures.append(exc.message)

    flooder = threading.Thread(target=flood)
    flooder.start()
    try:
        yield failures
    finally:
        stopping.set()
        flooder.join(30)
