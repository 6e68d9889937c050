"""API.md: "The sha256 is checked on every load; a mismatch marks the version `corrupt`".

The inference server finds the mismatch but never writes to the store: it asks the registry,
which hashes the file itself (POST .../verify). Real servers on loopback, one data dir.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest

from app.client import Client, ClientError
from app.config import Paths
from app.store import Store
from tests.conftest import TOKEN
from tests.inference.conftest import flip_byte
from tests.live import free_ports, start_inference, start_registry, stop, wait_until
from tests.models import iris_model, iris_rows, write_skops


def status(client: Client, version: int) -> str:
    return str(client.request("GET", f"/api/v1/models/iris/versions/{version}")["status"])


def test_verify_marks_a_changed_file_corrupt_and_a_repaired_one_ready(tmp_path: Path) -> None:
    home = tmp_path / "home"
    registry_port, _ = free_ports(2)
    registry = start_registry(home, registry_port)
    try:
        client = Client(f"http://127.0.0.1:{registry_port}", TOKEN)
        client.upload("iris", write_skops(tmp_path / "iris.skops", iris_model()), {})
        path = "/api/v1/models/iris/versions/1/verify"
        with pytest.raises(ClientError) as refused:  # a write: the token is needed
            Client(client.base_url, None).request("POST", path)
        assert refused.value.status == 401
        assert client.request("POST", path)["status"] == "ready"  # a match changes nothing

        store = Store(Paths(home), readonly=True)
        blob = store.blob_path(store.get_version("iris", 1))
        store.close()
        good = blob.read_bytes()
        blob.chmod(0o644)
        flip_byte(blob)
        answer = client.request("POST", path)
        assert answer["status"] == "corrupt" and "sha256" in answer["status_message"]
        blob.write_bytes(good)
        assert client.request("POST", path)["status"] == "ready"
        with pytest.raises(ClientError) as missing:
            client.request("POST", "/api/v1/models/iris/versions/7/verify")
        assert missing.value.status == 404
    finally:
        stop(registry)


def test_a_mismatch_found_by_the_inference_server_marks_the_version_corrupt(
        tmp_path: Path) -> None:
    home = tmp_path / "home"
    registry_port, inference_port = free_ports(2)
    registry = start_registry(home, registry_port)
    inference = None
    try:
        client = Client(f"http://127.0.0.1:{registry_port}", TOKEN)
        client.upload("iris", write_skops(tmp_path / "iris.skops", iris_model()), {})
        store = Store(Paths(home), readonly=True)
        blob = store.blob_path(store.get_version("iris", 1))
        store.close()
        blob.chmod(0o644)
        flip_byte(blob)
        inference = start_inference(home, inference_port,
                                    MODELDEPOT_REGISTRY_PORT=str(registry_port))
        request = urllib.request.Request(
            f"http://127.0.0.1:{inference_port}/v1/models/iris/versions/1/predict",
            data=b'{"instances": %s}' % str(iris_rows(1).tolist()).encode(),
            headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        assert refused.value.code == 503
        refused.value.close()
        wait_until(lambda: status(client, 1) == "corrupt", 30, "the version marked corrupt")
    finally:
        if inference is not None:
            stop(inference)
        stop(registry)
