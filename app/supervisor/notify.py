"""sd_notify(3) without libsystemd: one datagram per message to $NOTIFY_SOCKET.

systemd's `Type=notify` waits for READY=1; STATUS= lines show in `systemctl status`; STOPPING=1
announces a stop; WATCHDOG=1 must arrive at least every WatchdogSec or systemd restarts the unit.
Outside systemd (no NOTIFY_SOCKET) every call is a no-op.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)

# Variables that belong to the supervisor alone: a child that inherited them could send READY=1
# or WATCHDOG=1 on the supervisor's behalf (NotifyAccess=all accepts any process of the unit).
NOTIFY_ENV_VARS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def _socket_address(raw: str) -> str | None:
    if raw.startswith("@"):
        return "\0" + raw[1:]  # abstract namespace socket (Linux)
    if raw.startswith("/"):
        return raw
    return None  # e.g. vsock: addresses, which a service on a plain host never gets


class Notifier:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        raw = environ.get("NOTIFY_SOCKET", "")
        self.address = _socket_address(raw) if raw and hasattr(socket, "AF_UNIX") else None
        if raw and self.address is None:
            log.warning("NOTIFY_SOCKET=%s is not a unix socket; not notifying systemd.", raw)
        self.watchdog_interval = _watchdog_interval(environ)
        self._next_watchdog = 0.0
        self._warned = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *fields: str) -> bool:
        if self.address is None:
            return False
        message = "\n".join(f.replace("\n", " ") for f in fields).encode("utf-8", "replace")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto(message, self.address)
        except OSError as exc:
            if not self._warned:  # one line, not one per watchdog tick
                log.warning("Could not notify systemd at %s: %s", self.address, exc)
                self._warned = True
            return False
        return True

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        self.send(f"STATUS={status}")

    def stopping(self, status: str = "Stopping") -> None:
        self.send("STOPPING=1", f"STATUS={status}")

    def watchdog(self, now: float | None = None) -> None:
        """Send WATCHDOG=1 if it is due; call from the watch loop, so a stuck loop stops it."""
        if self.watchdog_interval is None:
            return
        now = time.monotonic() if now is None else now
        if now >= self._next_watchdog:
            self.send("WATCHDOG=1")
            self._next_watchdog = now + self.watchdog_interval


def _watchdog_interval(environ: Mapping[str, str]) -> float | None:
    """Half of WATCHDOG_USEC in seconds, as sd_watchdog_enabled(3) recommends; None if unset."""
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    pid = environ.get("WATCHDOG_PID")
    # A onefile build runs Python in a child of the bootloader, and systemd addresses the
    # bootloader (the unit's main PID), so our parent's pid counts as ours.
    if pid and pid not in (str(os.getpid()), str(os.getppid())):
        return None
    return usec / 2 / 1_000_000
