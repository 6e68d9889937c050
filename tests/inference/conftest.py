"""Inference apps over a real temporary store: in-process clients, and real uvicorn servers."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LogisticRegression

from app.config import Settings
from app.formats.signature import signature_from_estimator
from app.inference.app import create_app
from app.store import NewVersion, Store
from tests.conftest import TOKEN
from tests.models import iris_model, write_skops

AUTH = {"Authorization": f"Bearer {TOKEN}"}
IRIS_NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
ROW = [5.1, 3.5, 1.4, 0.2]


def add_version(store: Store, name: str, model: Any, tmp: Path, *, alias: str | None = None,
                signature: dict[str, Any] | None = None) -> int:
    """Store a fitted estimator as the model's next skops version; optionally point an alias."""
    path = write_skops(tmp / f"{name}-{time.monotonic_ns()}.skops", model)
    temp, sha, size = store.blobs.receive(iter([path.read_bytes()]))
    sig = signature if signature is not None else signature_from_estimator(model).to_dict()
    record = store.add_version(name, temp, sha, size, NewVersion(format="skops", signature=sig))
    if alias:
        store.set_alias(name, alias, record.version)
    return record.version


def named_signature(model: Any) -> dict[str, Any]:
    """The model's signature with feature names declared (as an upload's metadata gives them)."""
    sig = signature_from_estimator(model).to_dict()
    sig["feature_names"] = IRIS_NAMES
    return sig


def string_iris() -> LogisticRegression:
    from sklearn.datasets import load_iris

    data = load_iris()
    return LogisticRegression(max_iter=300).fit(data.data, data.target_names[data.target])


def regressor() -> RandomForestRegressor:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    return RandomForestRegressor(n_estimators=5, max_depth=4, random_state=0).fit(X, X.sum(axis=1))


def flip_byte(path: Path, offset: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture
def iris_store(store: Store, tmp_path: Path) -> Store:
    """`iris` (LogisticRegression, production -> 1) and `named` (feature names, latest 1)."""
    add_version(store, "iris", iris_model(), tmp_path, alias="production")
    named = iris_model(C=0.5)
    add_version(store, "named", named, tmp_path, signature=named_signature(named))
    return store


class AppClient:
    """A sync client over `httpx.ASGITransport`, with the app's lifespan run on a loop thread.

    (Starlette's TestClient warns about httpx; this is all the tests need of it.)
    """

    def __init__(self, app: FastAPI, base_url: str = "http://127.0.0.1") -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.base_url = base_url
        self._lifespan: Any = None
        self._client: httpx.AsyncClient | None = None

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def __enter__(self) -> AppClient:
        self.thread.start()

        async def start() -> None:
            self._lifespan = self.app.router.lifespan_context(self.app)
            await self._lifespan.__aenter__()
            self._client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app),
                                             base_url=self.base_url)

        self._call(start())
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            assert self._client is not None
            await self._client.aclose()
            await self._lifespan.__aexit__(None, None, None)

        self._call(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        assert self._client is not None
        return self._call(self._client.request(method, url, **kwargs))  # type: ignore[no-any-return]

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)



@pytest.fixture
def client(settings: Settings, iris_store: Store) -> Iterator[AppClient]:
    app = create_app(settings.replace(poll_interval_ms=20), iris_store)
    with AppClient(app) as c:
        yield c


def wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


class LiveServer:
    """The app on uvicorn in a thread, on an ephemeral loopback port."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, loop="asyncio", http="httptools", ws="none",
                                lifespan="on", access_log=False, log_config=None)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.run(self.server.serve(sockets=[self.sock]))

    def __enter__(self) -> LiveServer:
        self.thread.start()
        wait_for(lambda: self.server.started, 30)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()


@pytest.fixture
def live(settings: Settings, iris_store: Store) -> Iterator[LiveServer]:
    app = create_app(settings.replace(poll_interval_ms=20), iris_store)
    with LiveServer(app) as server:
        yield server
