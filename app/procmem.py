"""Resident memory of a process, for the dashboard's box charts (no psutil: one /proc read)."""

from __future__ import annotations

import os
import sys


def resident_bytes(pid: int | None = None) -> int | None:
    """VmRSS of `pid` (default: this process) on Linux; on other systems this process's peak
    resident size from getrusage, or None when neither is available."""
    try:
        with open(f"/proc/{pid or os.getpid()}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024  # the kernel reports kB
    except OSError:
        pass
    if pid is not None and pid != os.getpid():
        return None
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # macOS: bytes; else kB
