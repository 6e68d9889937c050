"""What a loaded model costs in resident memory, and giving freed memory back to the system.

The cache's budget (setting cache_memory_mb) once counted file sizes, which say little about
memory: a skops forest unpacks to several times its zip, a twin's session holds buffers the file
does not. A load is now charged what the process's resident set (RSS) grew by while it ran, never
less than its file's size. Measurements are taken one load at a time (a lock), so two loads never
count each other's growth; the libraries a first load imports are charged to it too, which errs
on the side of evicting early.

Eviction drops the cache's references, but glibc's malloc keeps small freed blocks in its arenas
rather than returning them, so RSS would not fall and the next load would stack on top: after an
eviction, `give_back` calls glibc's malloc_trim(0), which returns every free page of every arena
(madvise) to the system. Elsewhere (musl, macOS, Windows) it does nothing: those allocators
return memory on their own schedule.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import threading
from collections.abc import Callable
from typing import TypeVar

from app.procmem import resident_bytes

T = TypeVar("T")
_measuring = threading.Lock()


def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim  # glibc only: musl has no such symbol
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_TRIM = _malloc_trim()


def measured(load: Callable[[], T], floor: int) -> tuple[T, int]:
    """Run `load` and return its result with the RSS growth it caused (at least `floor`)."""
    with _measuring:
        before = resident_bytes() or 0
        result = load()
        after = resident_bytes() or 0
    return result, max(after - before, floor)


def give_back() -> None:
    """Return free heap pages to the system; blocking for a few milliseconds, without the GIL
    (a ctypes call): run it off the event loop. No gc.collect: a fitted estimator holds no
    reference cycles, so dropping the cache's reference frees it, and a full collection would
    hold the GIL (and the event loop) for as long as it walks every object."""
    if _TRIM is None:
        return
    with _measuring:  # never while a load is measured: it would look smaller than it is
        _TRIM(0)
