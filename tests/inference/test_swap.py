"""Hot swap, rollback and corrupt files, against a real server under concurrent load."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from app.config import Settings
from app.inference.app import create_app
from app.store import Store
from tests.inference.conftest import ROW, AppClient, LiveServer, add_version, flip_byte, wait_for
from tests.models import iris_model


async def hammer(url: str, stop: threading.Event, seen: list[Any], concurrency: int = 16) -> None:
    """Predict as fast as possible until told to stop; every answer (or failure) is kept."""

    async def worker(client: httpx.AsyncClient) -> None:
        while not stop.is_set():
            try:
                r = await client.post("/v1/models/iris/predict", json={"instances": [ROW]})
                seen.append((r.status_code, r.json().get("version")))
            except Exception as exc:  # a dropped connection is a failed request too
                seen.append((type(exc).__name__, None))

    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))


def test_swap_and_rollback_under_load_fail_no_request(live: LiveServer, iris_store: Store,
                                                      tmp_path: Path) -> None:
    add_version(iris_store, "iris", iris_model(C=0.01), tmp_path)
    stop = threading.Event()
    result: list[Any] = []
    loader = threading.Thread(target=lambda: asyncio.run(hammer(live.url, stop, result)))
    loader.start()
    try:
        def served_versions() -> set[Any]:
            return {v for _, v in result[-20:]}

        wait_for(lambda: len(result) > 50)
        for target in (2, 1, 2, 1):  # promote, roll back, again
            iris_store.set_alias("iris", "production", target)
            wait_for(lambda t=target: served_versions() == {t})  # noqa: B023
    finally:
        stop.set()
        loader.join(60)
    statuses = {s for s, _ in result}
    assert statuses == {200}, [r for r in result if r[0] != 200][:5]
    assert {v for _, v in result} == {1, 2}


def test_a_flipped_byte_is_refused_and_the_old_version_keeps_serving(
    settings: Settings, iris_store: Store, tmp_path: Path
) -> None:
    version = add_version(iris_store, "iris", iris_model(C=0.01), tmp_path)
    record = iris_store.get_version("iris", version)
    blob = iris_store.blob_path(record)
    blob.chmod(0o644)
    flip_byte(blob)
    app = create_app(settings.replace(poll_interval_ms=20), iris_store)
    with AppClient(app) as c:
        assert c.post("/v1/models/iris/predict", json={"instances": [ROW]}).json()["version"] == 1
        iris_store.set_alias("iris", "production", version)
        wait_for(lambda: c.get("/v2/health/ready").json().get("failures"))
        # Still version 1, and the failure is visible in readiness and metadata.
        r = c.post("/v1/models/iris/predict", json={"instances": [ROW]})
        assert (r.status_code, r.json()["version"]) == (200, 1)
        failures = c.get("/v2/health/ready").json()["failures"]
        assert failures[0]["model"] == "iris" and failures[0]["version"] == str(version)
        assert "corrupt" in failures[0]["reason"]
        meta = c.get("/v2/models/iris").json()
        assert meta["versions"] == ["1"] and "corrupt" in meta["failures"][0]["reason"]
        # Asked for by number, the corrupt version is refused, with no file path in the answer.
        r = c.post(f"/v1/models/iris/versions/{version}/predict", json={"instances": [ROW]})
        assert r.status_code == 503 and "corrupt" in r.json()["error"]["message"]
        assert str(settings.home) not in r.text
        r = c.get(f"/v2/models/iris/versions/{version}/ready")
        assert r.status_code == 503 and r.json()["ready"] is False
        # The inference server wrote nothing itself: marking is the registry's, on a report
        # it checks (tests/test_corrupt_report.py); no registry answers here.
        assert iris_store.get_version("iris", version).status == "ready"


def test_a_repaired_file_is_served_after_the_next_change(
    settings: Settings, iris_store: Store, tmp_path: Path
) -> None:
    version = add_version(iris_store, "iris", iris_model(C=0.01), tmp_path)
    blob = iris_store.blob_path(iris_store.get_version("iris", version))
    good = blob.read_bytes()
    blob.chmod(0o644)
    flip_byte(blob)
    app = create_app(settings.replace(poll_interval_ms=20), iris_store)
    with AppClient(app) as c:
        iris_store.set_alias("iris", "production", version)
        wait_for(lambda: c.get("/v2/health/ready").json().get("failures"))
        blob.write_bytes(good)
        iris_store.set_alias("iris", "other", 1)  # any change makes the server look again
        wait_for(lambda: c.post("/v1/models/iris/predict",
                                json={"instances": [ROW]}).json()["version"] == version)


def test_new_version_is_served_as_latest_without_alias(settings: Settings, store: Store,
                                                       tmp_path: Path) -> None:
    add_version(store, "plain", iris_model(), tmp_path)
    app = create_app(settings.replace(poll_interval_ms=20), store)
    with AppClient(app) as c:
        assert c.post("/v1/models/plain/predict", json={"instances": [ROW]}).json()["version"] == 1
        model = iris_model(C=0.01)
        add_version(store, "plain", model, tmp_path)
        wait_for(lambda: c.post("/v1/models/plain/predict",
                                json={"instances": [ROW]}).json()["version"] == 2)
        r = c.post("/v1/models/plain/predict", json={"instances": [ROW], "proba": True})
        np.testing.assert_allclose(r.json()["probabilities"], model.predict_proba([ROW]))
        store.delete_version("plain", 2)
        wait_for(lambda: c.post("/v1/models/plain/predict",
                                json={"instances": [ROW]}).json()["version"] == 1)
        store.delete_model("plain")
        wait_for(lambda: c.post("/v1/models/plain/predict",
                                json={"instances": [ROW]}).status_code == 404)
