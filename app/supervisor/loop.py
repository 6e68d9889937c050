"""The watch loop: start both children, keep them alive, stop them on a signal.

As in uvicorn's supervisors, signal handlers only record the signal; one loop does all the work:

    while not self.should_exit:
        self.wait(TICK)              # woken early by any signal (set_wakeup_fd)
        self.handle_signals()
        self.keep_children_alive()
        self.report()

Restart policy, per child:
- it exits after it was healthy: restart at once, whatever its history, so a box is back from a
  crash in seconds;
- it stops answering after it was healthy: restart once it has neither answered nor used CPU
  for UNRESPONSIVE_SECONDS (progress.py); a child that is busy working is never killed for being
  slow to answer, a hung one (deadlock, SIGSTOP) still is;
- it fails during start-up (exits, or never answers): retry after an exponential backoff, capped;
  from the third failure in a row it is reported as a crash loop (log, status, systemd STATUS=)
  while the other child keeps serving.
"""

from __future__ import annotations

import collections
import logging
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.config import Settings
from app.net import url_host
from app.supervisor.children import (
    ChildSpec,
    child_specs,
    exit_code,
    kill_group,
    request_stop,
    spawn,
)
from app.supervisor.health import probe
from app.supervisor.notify import Notifier
from app.supervisor.progress import CpuSample, sample, working

log = logging.getLogger(__name__)

TICK = 0.2  # seconds between loop turns when nothing wakes it
CHECK_INTERVAL = 1.0  # between liveness probes of a healthy child
PROBE_TIMEOUT = 2.0
UNRESPONSIVE_SECONDS = 10.0  # a child neither answering nor using CPU this long is restarted
STARTUP_TIMEOUT = 90.0  # a onefile build on a slow box may take this long to import
BACKOFF_BASE, BACKOFF_CAP = 0.5, 30.0
CRASH_LOOP_AFTER = 3  # start-up failures in a row
STOP_GRACE = 10.0  # SIGTERM, then SIGKILL after this long
# A Ctrl+C reaches a onefile build twice: from the terminal (the launcher and the supervisor share
# its foreground process group) and again forwarded by the launcher. Only a second request after
# this long means "stop now".
REPEAT_WINDOW = 0.5

EXIT_SIGNALS = [signal.SIGINT, signal.SIGTERM]
if sys.platform == "win32":
    # Windows doesn't deliver SIGTERM from another process; CTRL_BREAK_EVENT arrives as SIGBREAK.
    EXIT_SIGNALS.append(signal.SIGBREAK)
else:
    EXIT_SIGNALS.append(signal.SIGHUP)  # the terminal went away
WAKE_SIGNALS = [signal.SIGCHLD] if hasattr(signal, "SIGCHLD") else []  # a child exited


def backoff_delay(failures: int) -> float:
    return float(min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(0, failures - 1)))


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


@dataclass
class Child:
    spec: ChildSpec
    host: str
    port: int
    process: subprocess.Popen[bytes] | None = None
    state: str = "stopped"  # starting, healthy, unresponsive, backoff, crash_loop, stopping
    ready: bool = False
    started_at: float = 0.0
    failing_since: float | None = None
    next_check: float = 0.0
    next_start: float = 0.0
    start_failures: int = 0
    starts: int = 0
    last_exit: str | None = None
    cpu: CpuSample | None = None  # at the last failed probe: is it working or hung?
    hung_since: float = 0.0  # since when it has neither answered nor used CPU
    busy_noted: bool = False  # "working, not restarting" logged for this silence

    @property
    def role(self) -> str:
        return self.spec.role

    @property
    def label(self) -> str:
        return self.spec.label

    @property
    def running_since_healthy(self) -> bool:
        return self.state in ("healthy", "unresponsive")

    def snapshot(self) -> dict[str, Any]:
        return {
            "pid": self.process.pid if self.process else None,
            "state": self.state,
            "ready": self.ready,
            "port": self.port,
            "url": f"http://{url_host(self.host)}:{self.port}",
            "restarts": max(0, self.starts - 1),
            "start_failures": self.start_failures,
            "last_exit": self.last_exit,
        }


@dataclass
class Supervisor:
    settings: Settings
    notifier: Notifier
    on_change: Callable[[Supervisor], None] = lambda s: None  # state changed: rewrite server.json
    on_ready: Callable[[Supervisor], None] = lambda s: None  # first time every child settled
    specs: tuple[ChildSpec, ...] = ()  # default: child_specs(settings)
    children: list[Child] = field(default_factory=list)
    should_exit: bool = False
    announced: bool = False
    stopping: bool = False
    signal_queue: collections.deque[int] = field(default_factory=collections.deque)

    def __post_init__(self) -> None:
        self.specs = self.specs or child_specs(self.settings)
        self.children = [Child(s, self.settings.host, s.port(self.settings)) for s in self.specs]
        self._status_line = ""

    # -- running ---------------------------------------------------------------------------

    def run(self) -> int:
        self._wake_r, self._wake_w = socket.socketpair()
        with self._wake_r, self._wake_w:
            for sock in (self._wake_r, self._wake_w):
                sock.setblocking(False)
            restore = self._install_signal_handlers()
            try:
                for child in self.children:
                    self.start(child)
                self.report()
                while not self.should_exit:
                    self.wait(TICK)
                    self.handle_signals()
                    if self.should_exit:
                        break
                    self.keep_children_alive()
                    self.report()
                    self.notifier.watchdog()
                self.shutdown()
            finally:
                restore()
        return 0

    def _install_signal_handlers(self) -> Callable[[], None]:
        previous: dict[int, Any] = {}
        for sig in EXIT_SIGNALS + WAKE_SIGNALS:
            previous[sig] = signal.signal(sig, self._record_signal)
        old_fd = signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)

        def restore() -> None:
            signal.set_wakeup_fd(old_fd)
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        return restore

    def _record_signal(self, signum: int, frame: object) -> None:
        self.signal_queue.append(signum)

    def wait(self, timeout: float) -> None:
        """Sleep up to `timeout`, waking as soon as a signal arrives."""
        readable, _, _ = select.select([self._wake_r], [], [], timeout)
        if readable:
            try:
                while self._wake_r.recv(512):
                    pass
            except (BlockingIOError, InterruptedError):
                pass

    def handle_signals(self) -> bool:
        """Act on recorded signals; True if one of them asked to exit."""
        asked = False
        while self.signal_queue:
            sig = self.signal_queue.popleft()
            if sig in EXIT_SIGNALS:
                log.info("Received %s; stopping.", signal.Signals(sig).name)
                self.should_exit = asked = True
        return asked

    # -- children --------------------------------------------------------------------------

    def start(self, child: Child) -> None:
        now = time.monotonic()
        try:
            child.process = spawn(child.spec, self.settings)
        except OSError as exc:
            log.error("Could not start the %s: %s.", child.label, exc)
            self._start_failed(child, str(exc), now)
            return
        child.starts += 1
        child.state, child.ready, child.started_at = "starting", False, now
        child.failing_since, child.cpu, child.busy_noted = None, None, False
        log.info("Started the %s (pid %d).", child.label, child.process.pid)

    def keep_children_alive(self) -> None:
        for child in self.children:
            now = time.monotonic()
            if child.process is None:
                if child.state in ("backoff", "crash_loop") and now >= child.next_start:
                    self.start(child)
                continue
            code = exit_code(child.process)
            if code is not None:
                self._exited(child, code, now)
            elif child.state == "starting":
                self._check_starting(child, now)
            elif now >= child.next_check:
                self._check_live(child, now)

    def _exited(self, child: Child, code: int, now: float) -> None:
        child.process, child.ready, child.last_exit = None, False, describe_exit(code)
        if child.running_since_healthy:
            log.warning("The %s exited (%s); restarting it now.", child.label, child.last_exit)
            self.start(child)
        else:
            self._start_failed(child, f"exited during start-up ({child.last_exit})", now)

    def _start_failed(self, child: Child, reason: str, now: float) -> None:
        child.process, child.ready = None, False
        child.start_failures += 1
        delay = backoff_delay(child.start_failures)
        child.next_start = now + delay
        log_file = self.settings.paths.logs / f"{child.role}.log"
        if child.start_failures >= CRASH_LOOP_AFTER:
            child.state = "crash_loop"
            others = [c.label for c in self.children if c is not child and c.ready]
            log.error(
                "The %s is in a crash loop: it failed to start %d times in a row (last: %s). "
                "Retrying in %.1f s. Its log is %s.%s", child.label, child.start_failures, reason,
                delay, log_file, f" The {others[0]} keeps serving." if others else "")
        else:
            child.state = "backoff"
            log.warning("The %s failed to start (%s); retrying in %.1f s.", child.label, reason,
                        delay)

    def _check_starting(self, child: Child, now: float) -> None:
        assert child.process is not None
        if probe(child.host, child.port, child.spec.ready_path, timeout=PROBE_TIMEOUT).ok:
            child.state, child.ready, child.start_failures = "healthy", True, 0
            child.next_check = now + CHECK_INTERVAL
            log.info("The %s is ready on port %d (%.1f s).", child.label, child.port,
                     now - child.started_at)
        elif now - child.started_at > STARTUP_TIMEOUT:
            if probe(child.host, child.port, child.spec.live_path, timeout=PROBE_TIMEOUT).ok:
                log.warning("The %s answers but is not ready after %.0f s; serving anyway.",
                            child.label, STARTUP_TIMEOUT)
                child.state, child.next_check = "healthy", now + CHECK_INTERVAL
                return
            kill_group(child.process)
            child.process.wait()
            self._start_failed(child, f"no answer within {STARTUP_TIMEOUT:.0f} s", now)

    def _check_live(self, child: Child, now: float) -> None:
        assert child.process is not None
        child.next_check = now + CHECK_INTERVAL
        if probe(child.host, child.port, child.spec.live_path, timeout=PROBE_TIMEOUT).ok:
            if child.state == "unresponsive":
                log.info("The %s answers again.", child.label)
            child.state, child.failing_since, child.busy_noted = "healthy", None, False
            if not child.ready:
                ready = probe(child.host, child.port, child.spec.ready_path, PROBE_TIMEOUT)
                child.ready = ready.ok
            return
        cpu, child.cpu = child.cpu, sample(child.process.pid, time.monotonic())
        if child.failing_since is None:
            child.state, child.failing_since, child.hung_since = "unresponsive", now, now
            log.warning("The %s did not answer its health check.", child.label)
            return
        if working(cpu, child.cpu):
            child.hung_since = now  # alive and working: slow to answer, not hung
            if now - child.failing_since >= UNRESPONSIVE_SECONDS and not child.busy_noted:
                child.busy_noted = True
                log.warning("The %s has not answered for %.0f s but is working (using CPU); "
                            "not restarting it.", child.label, now - child.failing_since)
        elif now - child.hung_since >= UNRESPONSIVE_SECONDS:
            log.error("The %s has neither answered nor used CPU for %.0f s; restarting it.",
                      child.label, now - child.hung_since)
            kill_group(child.process)  # the exit is seen next turn, and it restarts at once

    # -- reporting -------------------------------------------------------------------------

    def overall_state(self) -> str:
        if self.stopping:
            return "stopping"
        if all(c.ready and c.state == "healthy" for c in self.children):
            return "ready"
        return "degraded" if self.announced else "starting"

    def settled(self) -> bool:
        """Every child either serves or is crash-looping, and at least one serves."""
        return any(c.ready for c in self.children) and all(
            c.ready or c.state == "crash_loop" for c in self.children)

    def status_line(self) -> str:
        parts = []
        for c in self.children:
            text = f"{c.spec.key} {c.state.replace('_', ' ')}"
            if c.state == "crash_loop" and c.last_exit:
                text += f" ({c.last_exit}, {c.start_failures} failures)"
            parts.append(text)
        return f"{self.overall_state().capitalize()}: " + ", ".join(parts)

    def report(self) -> None:
        line = self.status_line()
        if line != self._status_line:
            self._status_line = line
            self.on_change(self)
            if self.announced:
                self.notifier.status(line)
        if not self.announced and self.settled():
            self.announced = True
            self.notifier.ready(line)
            self.on_ready(self)

    def snapshot(self) -> dict[str, Any]:
        return {"state": self.overall_state(),
                "children": {c.spec.key: c.snapshot() for c in self.children}}

    # -- stopping --------------------------------------------------------------------------

    def shutdown(self) -> None:
        self.stopping = True
        self.notifier.stopping()
        self.on_change(self)
        alive = [c for c in self.children if c.process is not None]
        for child in alive:
            child.state = "stopping"
            assert child.process is not None
            request_stop(child.process)
        began = time.monotonic()
        deadline = began + STOP_GRACE
        while alive and time.monotonic() < deadline:
            self.wait(TICK)
            if self.handle_signals() and time.monotonic() - began > REPEAT_WINDOW:
                log.warning("Asked again to stop: killing the servers now.")
                break
            alive = [c for c in alive if c.process and exit_code(c.process) is None]
        for child in alive:
            assert child.process is not None
            if exit_code(child.process) is None:
                log.warning("The %s did not stop within %.0f s; killing it.", child.label,
                            STOP_GRACE)
                kill_group(child.process)
        for child in self.children:
            if child.process is not None:
                child.process.wait()
                child.last_exit = describe_exit(child.process.returncode)
            child.process, child.state, child.ready = None, "stopped", False
        log.info("Stopped.")
