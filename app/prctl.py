"""Linux's prctl(2), looked up once: what the supervisor (parent-death signals) and the sandbox
child (no new privileges, seccomp) both need, in a module neither owns."""

from __future__ import annotations

import functools
from collections.abc import Callable

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
PR_SET_DUMPABLE = 4
PR_SET_SECCOMP = 22
PR_SET_NO_NEW_PRIVS = 38


@functools.cache
def libc_prctl() -> Callable[..., int] | None:
    """libc's prctl, looked up before any fork or memory limit: a forked child must not import
    or load, and ctypes.util.find_library would start ldconfig. None where there is none."""
    import ctypes

    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
        return prctl
    except (OSError, AttributeError):
        return None
