"""OS file locks that the kernel drops when their holder dies, however it dies.

An flock (POSIX) or a locked byte (Windows). Used for the one-supervisor-per-data-dir lock and
for the onefile build's second unpacking stage, which processes of one run share.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

# Windows locks byte ranges and refuses reads of a locked range, so lock a byte far past the
# content (the supervisor's lock file carries its pid).
_WINDOWS_LOCK_OFFSET = 1 << 20


def try_lock(f: IO[bytes]) -> bool:
    """Take the lock on an open file without waiting; False if another holds it."""
    if sys.platform == "win32":
        import msvcrt

        f.seek(_WINDOWS_LOCK_OFFSET)
        try:
            msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def unlock(f: IO[bytes]) -> None:
    if sys.platform == "win32":
        import msvcrt

        f.seek(_WINDOWS_LOCK_OFFSET)
        msvcrt.locking(f.fileno(), msvcrt.LK_UNLCK, 1)
    else:
        import fcntl

        fcntl.flock(f.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def held(path: Path, poll: float = 0.02) -> Iterator[None]:
    """Hold the lock on `path` (created if missing) for the block, waiting as long as it takes."""
    with open(path, "a+b") as f:
        while not try_lock(f):
            time.sleep(poll)
        try:
            yield
        finally:
            unlock(f)
