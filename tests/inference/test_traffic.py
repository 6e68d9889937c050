"""The inference server's traffic history: per-minute buckets, quantiles, its JSON routes, the
switch, and its memory bound."""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import pytest

from app.config import Settings
from app.inference.app import create_app
from app.inference.traffic import (
    BYTES_PER_MODEL,
    MINUTES,
    TrafficHistory,
    bin_middle_ms,
    latency_bin,
    memory_bound,
)
from app.store import Store
from tests.inference.conftest import AppClient
from tests.models import iris_rows

ROWS = iris_rows(2).tolist()


class Clock:
    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def test_buckets_hold_requests_errors_and_quantiles_per_minute() -> None:
    clock = Clock()
    history = TrafficHistory(clock)
    latencies = np.geomspace(0.001, 0.2, 500)  # 1 ms to 200 ms
    for seconds in latencies:
        history.served("iris", float(seconds))
    history.failed("iris")
    clock.now += 120  # two minutes later: one empty minute between
    history.served("iris", 0.004)

    buckets = history.history("iris", 3)
    assert [b["minute"] for b in buckets] == [int(clock.now // 60) - 2 + i for i in range(3)]
    first, empty, last = buckets
    assert (first["requests"], first["errors"]) == (501, 1)
    for q, key in ((0.5, "p50_ms"), (0.99, "p99_ms")):
        true_ms = 1000 * float(np.quantile(latencies, q))
        assert true_ms / 1.2 < first[key] < true_ms * 1.2  # one bin's width either way
    assert empty == {"minute": empty["minute"], "requests": 0, "errors": 0, "p50_ms": None,
                     "p99_ms": None}
    assert last["requests"] == 1 and last["p50_ms"] == last["p99_ms"] == pytest.approx(
        bin_middle_ms(latency_bin(0.004)), abs=1e-3)


def test_a_minute_coming_round_again_starts_empty() -> None:
    clock = Clock()
    history = TrafficHistory(clock)
    history.served("iris", 0.01)
    clock.now += 60 * MINUTES  # the same slot of the ring, a new minute
    history.served("iris", 0.01)
    assert history.history("iris", 1)[0]["requests"] == 1
    assert sum(b["requests"] for b in history.history("iris")) == 1


def test_memory_stays_within_the_stated_bound() -> None:
    """Many more models and minutes than the history keeps: what it holds stays under its
    bound, measured by the allocator, not computed."""
    clock = Clock()
    max_models = 50
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        history = TrafficHistory(clock, max_models=max_models)
        for minute in range(2 * MINUTES):
            clock.now += 60
            for model in range(minute * 3, minute * 3 + 2 * max_models, 7):
                history.served(f"model-{model}", 0.003)
                history.failed(f"model-{model}")
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(history.models()) == max_models
    assert max_models * BYTES_PER_MODEL < held <= memory_bound(max_models)


def test_the_routes_report_served_and_failed_predictions(settings: Settings,
                                                         iris_store: Store) -> None:
    with AppClient(create_app(settings.replace(poll_interval_ms=20), iris_store)) as client:
        for _ in range(3):
            assert client.post("/v1/models/iris/predict", json={"instances": ROWS}).status_code \
                == 200
        bad = client.post("/v1/models/iris/predict", json={"instances": [[1, 2]]})
        assert bad.status_code == 422
        unknown = client.post("/v1/models/nosuch/predict", json={"instances": ROWS})
        assert unknown.status_code == 404

        listed = client.get("/v1/traffic").json()
        assert listed["models"] == ["iris"]  # the made-up name took no place
        assert listed["memory_bound_bytes"] == memory_bound()
        body = client.get("/v1/models/iris/traffic?minutes=5").json()
        assert body["bucket_seconds"] == 60 and len(body["buckets"]) == 5
        total = sum(b["requests"] for b in body["buckets"])
        errors = sum(b["errors"] for b in body["buckets"])
        assert (total, errors) == (4, 1)
        assert client.get("/v1/models/iris/traffic?minutes=0").status_code == 400
        resources = client.get("/v1/resources").json()
        assert resources["loaded_models"] >= 1 and resources["resident_bytes"] > 0
        assert resources["cache_memory_bytes"] == settings.cache_memory_mb << 20


def test_switched_off_it_keeps_nothing(settings: Settings, iris_store: Store) -> None:
    app = create_app(settings.replace(poll_interval_ms=20, traffic_history=False), iris_store)
    with AppClient(app) as client:
        assert client.post("/v1/models/iris/predict", json={"instances": ROWS}).status_code == 200
        off = client.get("/v1/models/iris/traffic")
        assert off.status_code == 404 and off.json()["error"]["code"] == "traffic_history_off"
    assert app.state.history is None
