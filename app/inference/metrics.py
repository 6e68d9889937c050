"""Prometheus metrics of one inference app, in a registry of its own (tests build many apps).

Per-version series (requests, latency, batch sizes) are plain numbers in a ModelMetrics bound
once when a version loads: the event loop is their only writer, so a prediction pays a few
additions and no lock (prometheus_client's metric objects take a lock per `inc`, twice per
`observe`); a collector turns them into the usual counter and histogram families at each
scrape. Error counts carry no model label: a client can make up any number of model names, and
each label value is a time series kept forever.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

from app.diskspace import room_of

_go_string = cast(Callable[[float], str], floatToGoString)  # untyped in prometheus_client

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
LOAD_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0)


class Buckets:
    """A histogram's counts: `observe` from the event loop, read at scrape time."""

    __slots__ = ("bounds", "counts", "labels", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.labels = [_go_string(b) for b in (*bounds, float("inf"))]  # "0.0005" ... "+Inf"
        self.counts = [0] * (len(bounds) + 1)  # the last: above every bound (+Inf only)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # the first bucket with value <= le
        self.total += value

    def cumulative(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        running = 0
        for label, count in zip(self.labels, self.counts, strict=True):
            running += count
            out.append((label, float(running)))
        return out


class ModelMetrics:
    """One served version's series."""

    __slots__ = ("model", "version", "requests", "latency", "batch")

    def __init__(self, model: str, version: int) -> None:
        self.model = model
        self.version = str(version)
        self.requests = {"v1": 0, "v2": 0}
        self.latency = Buckets(LATENCY_BUCKETS)
        self.batch = Buckets(BATCH_BUCKETS)

    def observe(self, protocol: str, seconds: float) -> None:
        self.requests[protocol] += 1
        self.latency.observe(seconds)


class InferenceMetrics:
    def __init__(self, data_dir: Path | None = None, min_free_disk: str | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        if data_dir is not None:
            self._disk_gauges(data_dir, min_free_disk)
        self._bound: dict[tuple[str, int], ModelMetrics] = {}
        r.register(_VersionSeries(self._bound))
        self.errors = Counter("modeldepot_inference_errors",
                              "Prediction requests refused or failed, by HTTP status.",
                              ["protocol", "status"], registry=r)
        self.loaded = Gauge("modeldepot_inference_loaded_models",
                            "Model versions held in memory.", registry=r)
        self.loaded_bytes = Gauge("modeldepot_inference_loaded_bytes",
                                  "Resident memory the loaded versions added when they "
                                  "loaded (at least their files' sizes): what cache_memory_mb "
                                  "budgets.",
                                  registry=r)
        self.load_seconds = Histogram("modeldepot_inference_load_seconds",
                                      "Verify, load and warm-up time of a version.",
                                      ["model"], buckets=LOAD_BUCKETS, registry=r)
        self.load_failures = Counter("modeldepot_inference_load_failures",
                                     "Versions that failed to verify, load or warm up.",
                                     ["model"], registry=r)

    def _disk_gauges(self, data_dir: Path, rule: str | None) -> None:
        """Free space of the data dir's disk, read when scraped (a statvfs call): what an alert
        on "the box is filling up" needs, beside the guard's threshold."""
        def reader(field: str) -> Callable[[], float]:
            def read() -> float:
                found = room_of(data_dir, rule)
                return float(getattr(found, field)) if found is not None else float("nan")
            return read

        for name, field, text in (
            ("free", "free", "Free bytes on the data dir's disk."),
            ("total", "total", "Size in bytes of the data dir's disk."),
            ("min_free", "minimum", "Free bytes writes must leave (min_free_disk); below it "
                                    "uploads, datasets and training answer 507."),
        ):
            gauge = Gauge(f"modeldepot_disk_{name}_bytes", text, registry=self.registry)
            gauge.set_function(reader(field))

    def bind(self, model: str, version: int) -> ModelMetrics:
        """The version's series, kept (like any Prometheus series) after it is unloaded; a
        version loaded again counts on where it left off."""
        found = self._bound.get((model, version))
        if found is None:
            found = self._bound[(model, version)] = ModelMetrics(model, version)
        return found

    def error(self, protocol: str, status: int) -> None:
        self.errors.labels(protocol, str(status)).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _VersionSeries:
    """The per-version families, read from the ModelMetrics at scrape time."""

    def __init__(self, bound: dict[tuple[str, int], ModelMetrics]) -> None:
        self._bound = bound

    def describe(self) -> list[Metric]:
        return []  # known only once versions load; the registry need not check names

    def collect(self) -> Iterator[Metric]:
        found = list(self._bound.values())  # a load on another thread may add one meanwhile
        requests = CounterMetricFamily("modeldepot_inference_requests", "Predictions answered.",
                                       labels=["model", "version", "protocol"])
        latency = HistogramMetricFamily(
            "modeldepot_inference_request_seconds",
            "Time from request to response body, per model version.", labels=["model", "version"])
        batch = HistogramMetricFamily("modeldepot_inference_batch_requests",
                                      "Requests stacked into one predict call.",
                                      labels=["model", "version"])
        for m in found:
            for protocol, count in m.requests.items():
                requests.add_metric([m.model, m.version, protocol], count)
            latency.add_metric([m.model, m.version], m.latency.cumulative(), m.latency.total)
            batch.add_metric([m.model, m.version], m.batch.cumulative(), m.batch.total)
        yield from (requests, latency, batch)
