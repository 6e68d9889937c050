"""The sandbox zygote: a process that imports the model libraries once, then forks one sandbox
child per inspection, so an upload no longer waits a second and a half for imports.

Started by the registry (app/formats/zygote_client.py) as `modeldepot sandbox-zygote <pid>`
(`python -m app sandbox-zygote <pid>` from source), with one end of a Unix SOCK_SEQPACKET
socketpair as its stdin. Each message from the registry is `{"id": n}` carrying three
descriptors (SCM_RIGHTS): the read end of the child's stdin pipe and the write ends of its stdout
and stderr pipes. The zygote forks; the child puts them at 0, 1 and 2 and from there is exactly
the sandbox child of app/formats/sandbox_child.py after its imports: it reads the request,
confines itself (same `confine()` call, same limits), inspects, and answers on stdout. The
zygote answers `{"id": n, "pid": p}` after the fork, `{"id": n, "status": s}` (an exit code, or
minus the signal) when it has reaped the child, or `{"id": n, "error": "..."}` if it could not
fork.

The zygote never opens a client file and never confines itself: it must keep forking. It exits
when its socket closes or the registry dies (PR_SET_PDEATHSIG), killing its children first.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import sys
import traceback
from collections.abc import Sequence

from app.formats.confine import die_with_parent
from app.formats.sandbox_child import (
    FORK_SAFE,
    THREADED,
    answer,
    preload,
    read_request,
    single_threaded_environment,
)

MESSAGE_MAX = 4096
FDS_PER_REQUEST = 3


def main(args: Sequence[str]) -> int:
    """`sandbox-zygote <registry pid>`: serve fork requests on stdin until it closes."""
    registry = int(args[0]) if args else os.getppid()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl+C is the registry's to handle
    if not die_with_parent(registry):
        return 0
    channel = socket.socket(fileno=os.dup(0))
    _stdin_from_devnull()
    single_threaded_environment()
    preload(FORK_SAFE)
    threads = len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else 1
    if threads != 1:  # each child would inherit the threads' locks but not the threads
        print(f"modeldepot sandbox-zygote: {threads} threads after the imports; forking is "
              "unsafe, so the registry checks files in new processes", file=sys.stderr)
        return 1
    _Zygote(channel).serve()
    return 0


def _stdin_from_devnull() -> None:
    """Fd 0 was the socket (kept as `channel`); a child's stdin is replaced per request anyway."""
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)


class _Zygote:
    def __init__(self, channel: socket.socket) -> None:
        self.channel = channel
        self.children: dict[int, int] = {}  # pid -> request id
        # SIGCHLD wakes the select loop through this pipe; the handler itself does nothing, so
        # a signal can never interrupt the loop halfway through bookkeeping.
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)

    def serve(self) -> None:
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        with selectors.DefaultSelector() as selector:
            selector.register(self.channel, selectors.EVENT_READ)
            selector.register(self.wake_r, selectors.EVENT_READ)
            try:
                while self._step(selector):
                    pass
            finally:
                self._end_children()

    def _step(self, selector: selectors.BaseSelector) -> bool:
        """One round of the loop; False once the registry has gone."""
        for key, _ in selector.select():
            if key.fileobj is self.channel:
                if not self._receive():
                    return False
            else:
                with contextlib.suppress(BlockingIOError):
                    while os.read(self.wake_r, 512):
                        pass
        return self._reap()

    def _receive(self) -> bool:
        try:
            data, fds, _flags, _addr = socket.recv_fds(self.channel, MESSAGE_MAX, FDS_PER_REQUEST)
        except OSError:
            return False
        if not data:
            _close_all(fds)
            return False
        try:
            request_id = int(json.loads(data)["id"])
        except (ValueError, KeyError, TypeError):
            _close_all(fds)
            return True  # not from our registry's code; nothing to answer to
        if len(fds) != FDS_PER_REQUEST:
            _close_all(fds)
            return self._send({"id": request_id, "error": f"{len(fds)} descriptors, not 3"})
        try:
            pid = os.fork()
        except OSError as exc:
            _close_all(fds)
            return self._send({"id": request_id, "error": f"fork failed: {exc.strerror}"})
        if pid == 0:
            self._become_child(fds)
        _close_all(fds)
        self.children[pid] = request_id
        return self._send({"id": request_id, "pid": pid})

    def _become_child(self, fds: list[int]) -> None:
        """In the forked child: drop the zygote's state, take the request's pipes as 0, 1 and 2,
        and run the sandbox child from after its imports. Never returns."""
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            self.channel.close()
            os.close(self.wake_r)
            os.close(self.wake_w)
            zygote = os.getppid()
            if die_with_parent(zygote):
                for target, fd in enumerate(fds):
                    if fd != target:
                        os.dup2(fd, target)
                _close_all([fd for fd in fds if fd > 2])
                preload(THREADED)
                code = answer(read_request())
        except BaseException:
            traceback.print_exc()
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os._exit(code)

    def _reap(self) -> bool:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            request_id = self.children.pop(pid, None)
            if request_id is not None and not self._send(
                {"id": request_id, "status": os.waitstatus_to_exitcode(status)}
            ):
                return False
        return True

    def _send(self, message: dict[str, object]) -> bool:
        try:
            self.channel.send(json.dumps(message).encode())
        except OSError:
            return False
        return True

    def _end_children(self) -> None:
        """The registry has gone: its checks go with it, reaped here rather than left to init."""
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in self.children:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self.children.clear()


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
