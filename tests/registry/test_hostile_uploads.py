"""Hostile model uploads over real HTTP to a real registry process: each file would create a
marker if anything in it ran; every one is a JSON 422 that names the refused name, stores
nothing and leaves no marker, with trust or without."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import TOKEN
from tests.formats import hostile
from tests.live import free_port, start_registry, stop


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("hostile") / "home"
    port = free_port()
    proc = start_registry(home, port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def _files(marker: Path) -> dict[str, tuple[str, bytes]]:
    module, attr = hostile.os_reexports()[0]
    skops_code = hostile.runstring_skops(marker)
    pickle_code = hostile.runstring_pickle(marker)
    return {
        "skops-exec": ("m.skops", skops_code),
        "skops-os-reexport": ("m.skops", hostile.os_reexport_skops(module, attr)),
        "pickle-exec": ("m.pkl", pickle_code),
        "pickle-os-reexport": ("m.pkl",
                               hostile.os_system_via_reexport_pickle(module, attr, marker)),
        "mlflow-skops": ("m.zip", hostile.mlflow_zip(skops_code, "skops")),
        "mlflow-pickle": ("m.zip", hostile.mlflow_zip(pickle_code, "cloudpickle")),
    }


@pytest.mark.parametrize("kind", ["skops-exec", "skops-os-reexport", "pickle-exec",
                                  "pickle-os-reexport", "mlflow-skops", "mlflow-pickle"])
@pytest.mark.parametrize("trust", [False, True])
def test_a_hostile_upload_is_a_422_and_runs_nothing(registry: str, tmp_path: Path, kind: str,
                                                    trust: bool) -> None:
    marker = tmp_path / "marker"
    filename, data = _files(marker)[kind]
    auth = {"Authorization": f"Bearer {TOKEN}"}
    r = httpx.post(f"{registry}/api/v1/models/evil/versions", headers=auth, timeout=60,
                   files={"file": (filename, data)},
                   data={"metadata": json.dumps({"trust": trust})})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "unsafe_model", error
    assert any(n in error["message"] for n in ("runstring", ".os", "getattr")), error
    assert httpx.get(f"{registry}/api/v1/models/evil", timeout=10).status_code == 404
    assert not marker.exists()
