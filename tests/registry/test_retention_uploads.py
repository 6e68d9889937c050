"""Retention through the registry: each new version trims its model to `keep_versions` (a model
tag can say otherwise), and `modeldepot gc` does the same by hand with a report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.cli import main
from app.config import Settings
from app.store import Store
from tests.models import iris_model, write_skops
from tests.registry.conftest import AUTH, registry_app, upload


def skops_files(tmp_path: Path, count: int) -> list[Path]:
    """Distinct files (distinct C), so each version has its own blob."""
    return [write_skops(tmp_path / f"m{n}.skops", iris_model(C=1.0 + n)) for n in range(count)]


def versions(client: object, model: str) -> list[int]:
    body = client.get(f"/api/v1/models/{model}/versions").get_json()  # type: ignore[attr-defined]
    return sorted(v["version"] for v in body["versions"])


def test_each_upload_trims_to_keep_versions(settings: Settings, tmp_path: Path) -> None:
    files = skops_files(tmp_path, 5)
    with registry_app(settings.replace(keep_versions=2, twins=False)) as app:
        client = app.test_client()
        for n, path in enumerate(files[:4]):
            assert upload(client, "iris", path).status_code == 201
            if n == 0:
                assert client.put("/api/v1/models/iris/aliases/production", json={"version": 1},
                                  headers=AUTH).status_code == 200
        # 1 keeps its alias; 2 went when 4 came.
        assert versions(client, "iris") == [1, 3, 4]
        assert client.patch("/api/v1/models/iris", json={"tags": {"keep_versions": "all"}},
                            headers=AUTH).status_code == 200
        assert upload(client, "iris", files[4]).status_code == 201
        assert versions(client, "iris") == [1, 3, 4, 5]
        blobs = app.extensions["modeldepot"].store.blobs
        assert len(list(blobs.all_digests())) == 4


def test_gc_command_reports_then_removes(settings: Settings, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    with registry_app(settings.replace(twins=False)) as app:
        client = app.test_client()
        for path in skops_files(tmp_path, 3):
            assert upload(client, "iris", path).status_code == 201
    home = str(settings.home)
    sizes = [p.stat().st_size for p in sorted(tmp_path.glob("m*.skops"))]

    assert main(["gc", "--home", home, "--keep-versions", "1", "--dry-run", "--json"]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert dry["versions"] == ["iris version 2", "iris version 1"]
    assert dry["bytes_freed"] == sizes[0] + sizes[1]
    store = Store(settings.paths)
    try:
        assert store.get_model("iris").version_count == 3
    finally:
        store.close()

    assert main(["gc", "--home", home, "--keep-versions", "1"]) == 0
    out = capsys.readouterr().out
    assert "removed: iris version 1" in out
    assert f"freed {sizes[0] + sizes[1]} bytes" in out
    store = Store(settings.paths)
    try:
        assert store.get_model("iris").version_count == 1
        assert len(list(store.blobs.all_digests())) == 1
    finally:
        store.close()
