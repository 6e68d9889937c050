"""The supervisor inside a PyInstaller onefile binary: outlive nothing, leave no unpack folder.

A onefile `modeldepot` runs as two processes: the bootloader, which unpacked the bundle into
`$TMPDIR/_MEIxxxxxx` and waits, and its child, which runs Python (the supervisor). The bootloader
forwards SIGTERM and SIGINT to the child and removes the folder once the child exits. The children
the supervisor starts are the same binary; their bootloader sees the inherited environment, reuses
the folder and runs Python in-process, so they never unpack nor clean up anything.

If the bootloader is killed outright (SIGKILL, the OOM killer), the supervisor would go on with no
one to stop it, and the folder (hundreds of MB) would stay behind. So on Linux the supervisor asks
the kernel for SIGTERM when the bootloader dies (its loop then stops the children as for any
SIGTERM), and on the way out removes the folder itself if the bootloader is gone.

Outside a onefile build every function here does nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import sys
from pathlib import Path

from app.lazy_unpack import stop_unpacking
from app.prctl import PR_SET_PDEATHSIG, libc_prctl

log = logging.getLogger(__name__)



def unpack_dir() -> Path | None:
    """The onefile build's unpack folder; None from source or in a onedir build."""
    bundle = getattr(sys, "_MEIPASS", None)
    if not getattr(sys, "frozen", False) or not bundle:
        return None
    here = Path(sys.executable).resolve().parent
    folder = Path(bundle).resolve()
    # A onedir build's bundle is the `_internal` folder beside the executable.
    return None if folder == here or here in folder.parents else folder


def _is_our_bootloader(pid: int) -> bool:
    try:
        return os.path.samefile(f"/proc/{pid}/exe", sys.executable)
    except OSError:
        return False


def watch_bootloader() -> int | None:
    """SIGTERM this process when the onefile bootloader above it dies; returns its pid.

    None when there is no such bootloader (source, onedir) or it cannot be watched.
    """
    if unpack_dir() is None or not sys.platform.startswith("linux"):
        return None
    bootloader = os.getppid()
    if not _is_our_bootloader(bootloader):
        return None  # already re-parented: the check below finds it gone at exit
    prctl = libc_prctl()
    if prctl is None:
        return None
    prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != bootloader:  # it died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)
    return bootloader


def remove_unpack_dir_if_orphaned(bootloader: int | None) -> None:
    """Call last, once every child is gone: the bootloader cannot clean up after a SIGKILL."""
    folder = unpack_dir()
    if folder is None or bootloader is None or os.getppid() == bootloader:
        return  # the bootloader is alive and removes the folder once we exit
    log.warning("The launcher process (pid %d) is gone; removing the unpack folder %s.",
                bootloader, folder)
    stop_unpacking()
    # Our own libraries stay mapped after their files are unlinked; nothing is imported after.
    with contextlib.suppress(OSError):
        shutil.rmtree(folder)
