"""Inside a child: exit when the supervisor that started it is gone.

On Linux the kernel already kills a child whose supervisor dies (PR_SET_PDEATHSIG, children.py).
This watch covers what that cannot: other systems and grandchildren such as training pool workers,
which inherit `MODELDEPOT_SUPERVISOR_PID` from the environment. (In a onefile build the children
are the supervisor's own: their bootloader finds the supervisor's unpack folder in the inherited
environment and runs Python in-process, with no launcher process between; frozen.py covers the
launcher above the supervisor.) Call `watch_parent()` once, early, in any
process the supervisor may leave behind; without the variable (a server started by hand) it does
nothing.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

from app.config import SUPERVISOR_PID_ENV

POLL_SECONDS = 0.25  # the orphan must be gone within 2 s of the supervisor


def watch_parent() -> bool:
    """Start a daemon thread that ends this process (and its group) once the supervisor is gone.

    Returns whether a watch was started.
    """
    try:
        supervisor = int(os.environ.get(SUPERVISOR_PID_ENV, ""))
    except ValueError:
        return False
    if supervisor <= 0 or supervisor == os.getpid():
        return False
    parent = os.getppid()
    if sys.platform == "win32":
        target, args = _watch_windows, (supervisor,)
    else:
        target, args = _watch_posix, (supervisor, parent, _group_to_kill(supervisor))
    threading.Thread(target=target, args=args, name="modeldepot-parentwatch", daemon=True).start()
    return True


def _group_to_kill(supervisor: int) -> int | None:
    """Our process group, if it is not the supervisor's (then it holds only us and our workers)."""
    try:
        own = os.getpgid(0)
        return own if own != os.getpgid(supervisor) else None
    except OSError:  # the supervisor is already gone, or another user's process
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _watch_posix(supervisor: int, parent: int, group: int | None) -> None:
    # A changed parent pid means our parent died and we were re-parented: that alone is proof,
    # with no pid-reuse doubt. The supervisor check covers grandchildren (pool workers), whose
    # parent is a child of the supervisor.
    while os.getppid() == parent and _alive(supervisor):
        time.sleep(POLL_SECONDS)
    if group is not None:
        os.killpg(group, signal.SIGKILL)  # our pool workers and us
    os.kill(os.getpid(), signal.SIGKILL)


def _watch_windows(supervisor: int) -> None:
    import ctypes

    synchronize, infinite = 0x00100000, 0xFFFFFFFF
    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    handle = kernel32.OpenProcess(synchronize, False, supervisor)
    if handle:
        kernel32.WaitForSingleObject(handle, infinite)
    os._exit(1)
