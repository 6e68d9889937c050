"""Prometheus metrics of one inference app, in a registry of its own (tests build many apps).

Per-model children are bound once when a version loads, so the hot path pays one `inc` and one
`observe`, never a label lookup. Error counts carry no model label: a client can make up any
number of model names, and each label value is a time series kept forever.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from app.diskspace import room_of

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
LOAD_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0)


@dataclass(frozen=True)
class ModelMetrics:
    requests_v1: Any
    requests_v2: Any
    latency: Any
    batch: Any

    def observe(self, protocol: str, seconds: float) -> None:
        (self.requests_v1 if protocol == "v1" else self.requests_v2).inc()
        self.latency.observe(seconds)


class InferenceMetrics:
    def __init__(self, data_dir: Path | None = None, min_free_disk: str | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        if data_dir is not None:
            self._disk_gauges(data_dir, min_free_disk)
        self.requests = Counter("modeldepot_inference_requests", "Predictions answered.",
                                ["model", "version", "protocol"], registry=r)
        self.errors = Counter("modeldepot_inference_errors",
                              "Prediction requests refused or failed, by HTTP status.",
                              ["protocol", "status"], registry=r)
        self.latency = Histogram("modeldepot_inference_request_seconds",
                                 "Time from request to response body, per model version.",
                                 ["model", "version"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("modeldepot_inference_batch_requests",
                                    "Requests stacked into one predict call.",
                                    ["model", "version"], buckets=BATCH_BUCKETS, registry=r)
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
        v = str(version)
        return ModelMetrics(
            requests_v1=self.requests.labels(model, v, "v1"),
            requests_v2=self.requests.labels(model, v, "v2"),
            latency=self.latency.labels(model, v),
            batch=self.batch_size.labels(model, v),
        )

    def error(self, protocol: str, status: int) -> None:
        self.errors.labels(protocol, str(status)).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
