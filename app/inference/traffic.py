"""Traffic history: per model, requests, errors and p50/p99 latency for each of the last minutes.

Kept in memory by the inference server, never written to the database (the prediction path
writes nothing). Each model has a ring of `MINUTES` per-minute buckets in one preallocated
`array` of 32-bit counters: requests, errors, and a latency histogram of `LATENCY_BINS`
logarithmic bins (each ~35% wider than the last, from 0.1 ms; quantiles are read as a bin's
geometric middle, so within ~17%). A bucket is reused when its minute comes round again.

Memory bound: at most `MAX_MODELS` models (the least recently used is dropped for a new one), each
`BYTES_PER_MODEL` (about 32 KiB) plus a few hundred bytes of Python objects, so under
`MEMORY_BOUND` (~7 MiB) whatever clients send. Errors are counted only for models the server
knows, so made-up names cannot fill it.
"""

from __future__ import annotations

import math
import time
from array import array
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

MINUTES = 180
LATENCY_BINS = 40
FIRST_EDGE_S = 1e-4  # upper edge of the first latency bin
GROWTH = 1.35  # each bin's upper edge over the one before: bin 39 ends near 13 minutes
MAX_MODELS = 200
SLOTS = 2 + LATENCY_BINS  # requests, errors, then the latency bins
BYTES_PER_MODEL = MINUTES * SLOTS * 4 + MINUTES * 8  # counters, plus each bucket's minute
OBJECT_OVERHEAD = 4096  # ring, array headers, name, dict entry: ~2.3 KiB measured


def memory_bound(max_models: int = MAX_MODELS) -> int:
    """The most memory the history can hold, in bytes."""
    return max_models * (BYTES_PER_MODEL + OBJECT_OVERHEAD)


MEMORY_BOUND = memory_bound()
REQUESTS, ERRORS = 0, 1


# Each bin's upper edge but the last's (which takes everything above): a search, not a log.
_EDGES = tuple(FIRST_EDGE_S * GROWTH ** k for k in range(LATENCY_BINS - 1))


def latency_bin(seconds: float) -> int:
    """The first bin whose upper edge is at or above `seconds`."""
    return bisect_left(_EDGES, seconds)


def bin_middle_ms(index: int) -> float:
    """A bin's geometric middle in milliseconds (the first bin's: half its upper edge)."""
    upper = FIRST_EDGE_S * GROWTH ** index
    return 1000 * (upper / math.sqrt(GROWTH) if index else upper / 2)


class Ring:
    """One model's buckets."""

    __slots__ = ("counts", "minutes")

    def __init__(self) -> None:
        self.counts = array("I", bytes(4 * MINUTES * SLOTS))
        self.minutes = array("q", [-1]) * MINUTES

    def base(self, minute: int) -> int:
        """The offset of `minute`'s bucket, emptied first if it held an older minute."""
        slot = minute % MINUTES
        base = slot * SLOTS
        if self.minutes[slot] != minute:
            self.minutes[slot] = minute
            self.counts[base:base + SLOTS] = array("I", bytes(4 * SLOTS))
        return base

    def bucket(self, minute: int) -> dict[str, Any]:
        slot = minute % MINUTES
        if self.minutes[slot] != minute:
            return {"minute": minute, "requests": 0, "errors": 0, "p50_ms": None, "p99_ms": None}
        base = slot * SLOTS
        bins = self.counts[base + 2:base + SLOTS]
        served = sum(bins)
        return {"minute": minute, "requests": self.counts[base + REQUESTS],
                "errors": self.counts[base + ERRORS],
                "p50_ms": _quantile(bins, served, 0.50), "p99_ms": _quantile(bins, served, 0.99)}


def _quantile(bins: array[int], total: int, q: float) -> float | None:
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(bins):
        seen += count
        if seen >= rank:
            return round(bin_middle_ms(index), 3)
    return round(bin_middle_ms(LATENCY_BINS - 1), 3)


class TrafficHistory:
    """Rings by model name. Called from the event loop only (the fast path and the routes), so
    it needs no lock."""

    def __init__(self, clock: Callable[[], float] = time.time,
                 max_models: int = MAX_MODELS) -> None:
        self._clock = clock
        self._max_models = max_models
        self._rings: OrderedDict[str, Ring] = OrderedDict()

    def _ring(self, model: str) -> Ring:
        ring = self._rings.get(model)
        if ring is None:
            if len(self._rings) >= self._max_models:
                self._rings.popitem(last=False)
            ring = self._rings[model] = Ring()
        else:
            self._rings.move_to_end(model)
        return ring

    def served(self, model: str, seconds: float) -> None:
        """One answered prediction and how long it took."""
        ring = self._ring(model)
        base = ring.base(int(self._clock() // 60))
        ring.counts[base + REQUESTS] += 1
        ring.counts[base + 2 + latency_bin(seconds)] += 1

    def failed(self, model: str) -> None:
        """One refused or failed prediction for a model the server knows."""
        ring = self._ring(model)
        base = ring.base(int(self._clock() // 60))
        ring.counts[base + REQUESTS] += 1
        ring.counts[base + ERRORS] += 1

    def knows(self, model: str) -> bool:
        return model in self._rings

    def models(self) -> list[str]:
        return sorted(self._rings)

    def history(self, model: str, minutes: int = MINUTES) -> list[dict[str, Any]]:
        """The last `minutes` minutes (at most MINUTES), oldest first, the current one last;
        minutes without requests are zeros. Empty for a model with no traffic recorded."""
        ring = self._rings.get(model)
        if ring is None:
            return []
        now = int(self._clock() // 60)
        count = max(1, min(minutes, MINUTES))
        return [ring.bucket(minute) for minute in range(now - count + 1, now + 1)]

    def summary(self) -> dict[str, Any]:
        return {"bucket_seconds": 60, "minutes": MINUTES, "max_models": self._max_models,
                "memory_bound_bytes": memory_bound(self._max_models)}
