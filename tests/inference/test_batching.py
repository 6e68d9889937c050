"""Micro-batching: concurrent requests share predict calls, and each caller gets its own rows."""

from __future__ import annotations

import asyncio
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np

from app.inference.batching import MicroBatcher, ModelRefused
from tests.inference.conftest import LiveServer
from tests.models import iris_model, iris_rows


class CountingModel:
    """Wraps a model; records every call's row count. Slow enough that requests pile up."""

    def __init__(self, model: Any, delay: float = 0.0, fail_on: float | None = None) -> None:
        self.model = model
        self.calls: list[int] = []
        self.delay = delay
        self.fail_on = fail_on
        self.gate = threading.Event()
        self.gate.set()

    def predict(self, X: np.ndarray) -> np.ndarray:
        self.gate.wait(10)
        self.calls.append(len(X))
        if self.fail_on is not None and (self.fail_on == X).any():
            raise ValueError("cannot handle this value")
        return np.asarray(self.model.predict(X))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_proba(X))


def test_concurrent_requests_are_stacked_and_split_back() -> None:
    model = CountingModel(iris_model())
    rows = iris_rows(150)

    async def run() -> list[Any]:
        batcher = MicroBatcher(model, ThreadPoolExecutor(1), window_s=0.001, max_batch_size=64,
                               max_rows=10_000)
        model.gate.clear()  # hold the first call so everything else queues behind it
        tasks = [asyncio.ensure_future(batcher.predict(rows[i:i + 1], proba=i % 2 == 0))
                 for i in range(150)]
        await asyncio.sleep(0.05)
        model.gate.set()
        return await asyncio.gather(*tasks)

    results = asyncio.run(run())
    reference = iris_model()
    for i, (predictions, probabilities) in enumerate(results):
        assert predictions.tolist() == reference.predict(rows[i:i + 1]).tolist()
        if i % 2 == 0:
            np.testing.assert_allclose(probabilities, reference.predict_proba(rows[i:i + 1]))
        else:
            assert probabilities is None
    assert sum(model.calls) == 150
    assert max(model.calls) > 1 and len(model.calls) < 150
    assert max(model.calls) <= 64  # max_batch_size


def test_a_lone_request_does_not_wait_for_the_window() -> None:
    model = CountingModel(iris_model())

    async def run() -> None:
        batcher = MicroBatcher(model, ThreadPoolExecutor(1), window_s=30.0, max_batch_size=64,
                               max_rows=10_000)
        await asyncio.wait_for(batcher.predict(iris_rows(1), proba=False), timeout=10)

    asyncio.run(run())  # a 30 s window would time out here if a lone request waited for it
    assert model.calls == [1]


def test_a_request_the_model_refuses_fails_alone() -> None:
    model = CountingModel(iris_model(), fail_on=99.0)
    rows = iris_rows(6).copy()
    rows[3, 0] = 99.0

    async def run() -> list[Any]:
        batcher = MicroBatcher(model, ThreadPoolExecutor(1), window_s=0.001, max_batch_size=64,
                               max_rows=10_000)
        model.gate.clear()
        tasks = [asyncio.ensure_future(batcher.predict(rows[i:i + 1], False)) for i in range(6)]
        await asyncio.sleep(0.05)
        model.gate.set()
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = asyncio.run(run())
    assert isinstance(results[3], ModelRefused) and "ValueError" in results[3].message
    ok = [r for i, r in enumerate(results) if i != 3]
    assert all(isinstance(r, tuple) for r in ok)


def test_live_server_batches_concurrent_clients(live: LiveServer) -> None:
    rows = iris_rows(150)
    reference = iris_model()

    async def one(client: httpx.AsyncClient, i: int) -> tuple[int, Any]:
        r = await client.post("/v2/models/iris/infer", json={"id": str(i), "inputs": [
            {"name": "input", "shape": [1, 4], "datatype": "FP64", "data": rows[i].tolist()}]})
        return i, r.json()

    async def run() -> list[tuple[int, Any]]:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(base_url=live.url, limits=limits, timeout=30) as client:
            return await asyncio.gather(*(one(client, i % 150) for i in range(600)))

    for i, body in asyncio.run(run()):
        assert body["id"] == str(i)
        outputs = {o["name"]: o["data"] for o in body["outputs"]}
        assert outputs["predict"] == reference.predict(rows[i:i + 1]).tolist()
        np.testing.assert_allclose(outputs["predict_proba"],
                                   reference.predict_proba(rows[i:i + 1]).reshape(-1))
    metrics = httpx.get(live.url + "/metrics").text
    count = float(re.search(r'batch_requests_count\{model="iris",version="1"\} (\S+)',
                            metrics).group(1))  # type: ignore[union-attr]
    total = float(re.search(r'batch_requests_sum\{model="iris",version="1"\} (\S+)',
                            metrics).group(1))  # type: ignore[union-attr]
    assert total == 600
    assert count < total  # some predict calls served more than one request


class ThreadRecordingModel:
    """Wraps a model; records which thread each call ran on, optionally taking `delay` s."""

    def __init__(self, model: Any, delay: float = 0.0) -> None:
        self.model, self.delay = model, delay
        self.threads: list[int] = []

    def predict(self, X: np.ndarray) -> np.ndarray:
        self.threads.append(threading.get_ident())
        if self.delay:
            threading.Event().wait(self.delay)
        return np.asarray(self.model.predict(X))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_proba(X))


def _lone_requests(model: ThreadRecordingModel, n: int, inline_call_s: float) -> int:
    """Send `n` requests one after another; returns the event loop's thread."""

    async def run() -> int:
        batcher = MicroBatcher(model, ThreadPoolExecutor(1), window_s=0.001, max_batch_size=64,
                               max_rows=10_000, inline_call_s=inline_call_s)
        for i in range(n):
            predictions, _ = await batcher.predict(iris_rows(1), proba=False)
            assert predictions.tolist() == iris_model().predict(iris_rows(1)).tolist(), i
        return threading.get_ident()

    return asyncio.run(run())


def test_lone_requests_to_a_quick_model_run_on_the_event_loop() -> None:
    model = ThreadRecordingModel(iris_model())
    loop_thread = _lone_requests(model, 6, inline_call_s=1.0)  # "quick": any busy machine
    assert model.threads[0] != loop_thread  # the first call, of unknown cost, goes to a thread
    assert model.threads[-3:] == [loop_thread] * 3  # once known to be quick: no handoff


def test_a_slow_model_never_blocks_the_event_loop() -> None:
    model = ThreadRecordingModel(iris_model(), delay=0.05)
    loop_thread = _lone_requests(model, 6, inline_call_s=0.01)
    assert loop_thread not in model.threads
