"""The registry's side of the sandbox zygote (app/formats/zygote.py): start it on first use,
hand it each child's pipes, learn each child's pid and exit status, end it at exit.

One zygote per registry process, started lazily by `shared_zygote()` and started again if it
died. A reader thread receives the zygote's messages and files them by request id, so several
inspections run at once. The zygote is started from that reader thread because
PR_SET_PDEATHSIG fires when the *thread* that started a process ends: a request thread or the
legacy converter's thread may end at any time, while the reader lives exactly as long as the
zygote's socket.

`ZygoteChild` has the shape of the direct child in app/formats/sandbox.py (stdin, stdout,
stderr, wait, kill), so the code that reads a child's answer is one for both. Whatever goes wrong
with the zygote itself raises `ZygoteLost`, and the caller checks the file in a new process.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import IO

from app.formats.sandbox_launch import sandbox_environment
from app.program import program_command

log = logging.getLogger(__name__)

ZYGOTE_COMMAND = "sandbox-zygote"  # dispatched first by app/cli/__init__.py
_MESSAGE_MAX = 4096
_EXIT_WAIT = 5.0


class ZygoteLost(Exception):
    """The zygote could not be started, or ended before a child's exit status reached us."""


def zygote_supported() -> bool:
    return sys.platform != "win32" and hasattr(os, "fork") and hasattr(socket, "send_fds")


@dataclass
class _Pending:
    """What the zygote has said so far about one request's child."""

    pid: int | None = None
    status: int | None = None
    error: str | None = None
    kill_when_started: bool = False


class Zygote:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._pending: dict[int, _Pending] = {}
        self._ids = itertools.count(1)
        self._alive = True
        self.forked_any = False  # a zygote that dies before its first fork is not retried at once
        self._process: subprocess.Popen[bytes] | None = None
        self._channel, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        started = threading.Event()
        self._reader = threading.Thread(target=self._run, args=(theirs, started),
                                        name="sandbox-zygote", daemon=True)
        self._reader.start()
        started.wait()
        if self._process is None:
            self._reader.join()
            self._channel.close()
            raise ZygoteLost("the zygote process could not be started")

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def alive(self) -> bool:
        with self._lock:
            return self._alive

    def _run(self, theirs: socket.socket, started: threading.Event) -> None:
        try:
            self._process = subprocess.Popen(
                program_command(ZYGOTE_COMMAND, str(os.getpid())), stdin=theirs.fileno(),
                stdout=subprocess.DEVNULL, env=sandbox_environment(), close_fds=True,
            )
        except OSError as exc:
            log.warning("the sandbox zygote could not be started: %s", exc)
            with self._lock:
                self._alive = False
            return
        finally:
            theirs.close()
            started.set()
        try:
            self._read_messages()
        finally:
            with self._lock:
                self._alive = False
                self._changed.notify_all()
            self._reap_zygote()

    def _read_messages(self) -> None:
        while True:
            try:
                data = self._channel.recv(_MESSAGE_MAX)
            except OSError:
                return
            if not data:
                return
            message = json.loads(data)
            with self._lock:
                pending = self._pending.get(int(message["id"]))
                if pending is None:
                    continue
                if "pid" in message:
                    pending.pid = int(message["pid"])
                    self.forked_any = True
                    if pending.kill_when_started:
                        _kill(pending.pid)
                elif "status" in message:
                    pending.status = int(message["status"])
                else:
                    pending.error = str(message.get("error"))
                self._changed.notify_all()

    def _reap_zygote(self) -> None:
        assert self._process is not None
        try:
            self._process.wait(_EXIT_WAIT)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.returncode not in (0, None):
            log.warning("the sandbox zygote ended with %s", self._process.returncode)

    def spawn(self) -> ZygoteChild:
        """A new child with pipes for its stdin, stdout and stderr. OSError when this process
        has no descriptors left for the pipes; ZygoteLost when the zygote cannot take it."""
        request_id = next(self._ids)
        ours: list[int] = []
        theirs: list[int] = []
        try:
            for _ in range(3):
                read_end, write_end = os.pipe()
                ours.append(read_end)
                theirs.append(write_end)
            ours[0], theirs[0] = theirs[0], ours[0]  # the child reads stdin, writes the others
            pending = _Pending()
            with self._lock:
                if not self._alive:
                    raise ZygoteLost("the zygote has ended")
                self._pending[request_id] = pending
            try:
                socket.send_fds(self._channel, [json.dumps({"id": request_id}).encode()], theirs)
            except OSError as exc:
                with self._lock:
                    self._pending.pop(request_id, None)
                raise ZygoteLost(f"the zygote does not answer ({exc})") from exc
        except BaseException:
            _close(ours)
            raise
        finally:
            _close(theirs)
        return ZygoteChild(self, request_id, pending, os.fdopen(ours[0], "wb"),
                           os.fdopen(ours[1], "rb"), os.fdopen(ours[2], "rb"))

    def wait(self, request_id: int, pending: _Pending) -> int:
        with self._changed:
            self._changed.wait_for(lambda: pending.status is not None or
                                   pending.error is not None or not self._alive)
            self._pending.pop(request_id, None)
        if pending.status is None:
            raise ZygoteLost(pending.error or "the zygote ended before the check did")
        return pending.status

    def kill(self, pending: _Pending) -> None:
        """Kill a child by pid, only while its exit status has not arrived: after that the pid
        may belong to another process. (Between the zygote reaping a child and its message
        arriving here the pid is free too, but for a moment far shorter than the kernel takes
        to hand out every pid once.) A child whose zygote has ended is already dying by its
        PR_SET_PDEATHSIG and is left alone."""
        with self._lock:
            if pending.status is not None or not self._alive:
                return
            if pending.pid is None:
                pending.kill_when_started = True
            else:
                _kill(pending.pid)

    def close(self) -> None:
        """End the zygote: it sees its socket close and exits, killing its children."""
        with contextlib.suppress(OSError):
            # shutdown, not only close: a job worker forked from the registry holds a copy
            self._channel.shutdown(socket.SHUT_RDWR)
        if self._reader is not threading.current_thread():
            self._reader.join()
        self._channel.close()


@dataclass
class ZygoteChild:
    """One sandbox child forked by the zygote, seen from the registry."""

    zygote: Zygote
    request_id: int
    pending: _Pending
    stdin: IO[bytes]
    stdout: IO[bytes]
    stderr: IO[bytes]

    @property
    def pid(self) -> int | None:
        return self.pending.pid

    def wait(self) -> int:
        return self.zygote.wait(self.request_id, self.pending)

    def kill(self) -> None:
        self.zygote.kill(self.pending)


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _close(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


_shared: Zygote | None = None
_shared_pid = 0
_shared_lock = threading.Lock()
_not_before = 0.0
# A zygote that ended before forking anything (it cannot import, or finds threads) would fail
# the same way again: each check would pay its start and then fall back. Wait this long.
RETRY_AFTER_FAILED_START = 60.0


def shared_zygote() -> Zygote:
    """This process's zygote, started on first use and again after it died."""
    global _shared, _shared_pid, _not_before
    with _shared_lock:
        if _shared is not None and _shared_pid == os.getpid():
            if _shared.alive:
                return _shared
            _shared.close()
            if not _shared.forked_any:
                _not_before = time.monotonic() + RETRY_AFTER_FAILED_START
        _shared, _shared_pid = None, os.getpid()
        if time.monotonic() < _not_before:
            raise ZygoteLost("the last zygote ended before it forked anything; not yet retried")
        try:
            _shared = Zygote()
        except ZygoteLost:
            _not_before = time.monotonic() + RETRY_AFTER_FAILED_START
            raise
        log.info("sandbox zygote started (pid %s)", _shared.pid)
        return _shared


def shutdown_zygote() -> None:
    """End this process's zygote, if it has one (at exit, and when the registry stops); the
    next check starts one again, whatever happened to the last."""
    global _shared, _not_before
    with _shared_lock:
        _not_before = 0.0
        if _shared is not None and _shared_pid == os.getpid():
            _shared.close()
        _shared = None


def _forget_after_fork() -> None:
    """A process forked from the registry (a job worker) must not use or end its zygote."""
    global _shared, _shared_lock, _not_before
    _shared_lock = threading.Lock()
    _not_before = 0.0
    if _shared is not None:
        with contextlib.suppress(OSError):
            os.close(_shared._channel.detach())
    _shared = None


atexit.register(shutdown_zygote)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
