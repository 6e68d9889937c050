"""Is a child that does not answer its health probe busy, or hung?

A probe that times out says only that no answer came. A child working hard (a large upload, a
burst of requests) burns CPU; a hung one (a deadlock, SIGSTOP, a wedged event loop) burns none.
The watch loop restarts only a child that neither answers nor uses CPU for a while (loop.py).

Read from /proc (Linux). Where it is missing, `sample` answers None and the loop falls back to
restarting after the unresponsive period alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

# A child using at least this share of one core between two probes is working. An idle Python
# server (waitress's poll loop, uvicorn's event loop) stays far below it; a stuck one is at 0.
BUSY_SHARE = 0.05
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class CpuSample:
    seconds: float  # user + system CPU time of the process, all its threads
    at: float  # monotonic time of the reading
    stopped: bool  # SIGSTOP or traced: it cannot run whatever its CPU says


def sample(pid: int, at: float) -> CpuSample | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # Fields after the command name: state is field 3 of proc(5), utime 14, stime 15.
    state, utime, stime = fields[0], int(fields[11]), int(fields[12])
    return CpuSample((utime + stime) / _TICK, at, state in ("T", "t"))


def working(before: CpuSample | None, after: CpuSample | None) -> bool:
    """Whether the process used at least BUSY_SHARE of a core between two samples."""
    if before is None or after is None or after.stopped:
        return False
    elapsed = after.at - before.at
    return elapsed > 0 and (after.seconds - before.seconds) >= BUSY_SHARE * elapsed
