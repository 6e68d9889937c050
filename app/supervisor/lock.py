"""One supervisor per data dir: an OS file lock on `<home>/serve.lock`.

The lock (app/oslock.py) is dropped by the kernel when the holder dies however it dies, so a lock
file left behind by a SIGKILL or a power cut is stale by construction: the next supervisor simply
takes it. The file also carries the holder's pid, for
`modeldepot stop` and for the "already running" message.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import IO

from app.oslock import try_lock, unlock

LOCK_NAME = "serve.lock"


def lock_path(home: Path) -> Path:
    return home / LOCK_NAME


class InstanceLock:
    """Held for the supervisor's whole life. Not inherited by children (PEP 446 descriptors)."""

    def __init__(self, home: Path) -> None:
        self.path = lock_path(home)
        self._file: IO[bytes] | None = None

    def acquire(self, patience: float = 1.0) -> bool:
        """Take the lock, retrying briefly: `status` and `stop` probe it for an instant."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "a+b")  # noqa: SIM115 - held open for the process's life
        deadline = time.monotonic() + patience
        while not try_lock(f):
            if time.monotonic() >= deadline:
                f.close()
                return False
            time.sleep(0.05)
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n".encode())
        f.flush()
        self._file = f
        return True

    def release(self) -> None:
        if self._file is None:
            return
        try:
            self._file.seek(0)
            self._file.truncate()
            unlock(self._file)
        finally:
            self._file.close()
            self._file = None


def holder(home: Path) -> int | None:
    """The pid of the running supervisor on this data dir, or None if nobody holds the lock."""
    path = lock_path(home)
    try:
        f = open(path, "rb")  # noqa: SIM115 - read-only suffices for flock (and other users)
    except FileNotFoundError:
        return None
    with f:
        if try_lock(f):  # free: whatever pid the file names is stale
            unlock(f)
            return None
        f.seek(0)
        try:
            return int(f.read(32).split()[0])
        except (ValueError, IndexError):
            return 0  # held, but the holder has not written its pid yet

