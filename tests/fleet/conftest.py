"""Two boxes for bundle tests: a publisher and an importer, each a registry app over its own real
data dir (Flask's test client), plus helpers to take a real bundle apart and put it together
again (altered), and to prove an import left nothing behind."""

from __future__ import annotations

import io
import sqlite3
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.config import Settings
from app.fleet import keys
from tests.conftest import TOKEN
from tests.models import iris_model, write_joblib, write_skops
from tests.registry.conftest import AUTH, registry_app, upload


@dataclass
class Box:
    settings: Settings
    app: Flask

    @property
    def client(self) -> FlaskClient:
        return self.app.test_client()

    @property
    def home(self) -> Path:
        return self.settings.home


def box_settings(home: Path, **changes: Any) -> Settings:
    # No twin builds on upload: they would start a spawn pool in every test. Twins are built on
    # purpose where a test needs one (compile.build_twin).
    return Settings(home=home, token=TOKEN, twins=False).replace(**changes)


@pytest.fixture
def publisher(tmp_path: Path) -> Iterator[Box]:
    settings = box_settings(tmp_path / "publisher")
    with registry_app(settings) as application:
        yield Box(settings, application)


@pytest.fixture
def importer(tmp_path: Path) -> Iterator[Box]:
    settings = box_settings(tmp_path / "importer")
    with registry_app(settings) as application:
        yield Box(settings, application)


def publish(box: Box, tmp: Path) -> None:
    """`iris`: v1 (skops, production), v2 (skops, staging); `other`: v1 (skops)."""
    for name, path in (("iris", write_skops(tmp / "a.skops")),
                       ("iris", write_skops(tmp / "b.skops", iris_model(C=0.3))),
                       ("other", write_skops(tmp / "c.skops", iris_model(C=0.1)))):
        assert upload(box.client, name, path, {"metrics": {"accuracy": 0.9},
                                                "description": f"from {path.name}",
                                                "tags": {"team": "fraud"}}).status_code == 201
    for alias, version in (("production", 1), ("staging", 2)):
        r = box.client.put(f"/api/v1/models/iris/aliases/{alias}", json={"version": version},
                           headers=AUTH)
        assert r.status_code == 200


def publish_pickle(box: Box, tmp: Path, name: str = "pick") -> None:
    path = write_joblib(tmp / f"{name}.joblib")
    r = upload(box.client, name, path, {"trust": True})
    assert r.status_code == 201, r.get_json()


def export(box: Box, *refs: str, sign: bool = True) -> bytes:
    query = "&".join(f"model={r}" for r in refs) + ("" if sign else "&sign=false")
    r = box.client.get(f"/api/v1/bundles?{query}")
    assert r.status_code == 200, r.get_data()[:500]
    return r.get_data()


def post_bundle(box: Box, data: bytes, query: str = "", **headers: str) -> Any:
    return box.client.post(f"/api/v1/bundles{query}", data=data,
                           content_type="application/x-tar", headers={**AUTH, **headers})


def members(bundle: bytes) -> list[tuple[str, bytes]]:
    """A bundle's members in order, read with the standard library's tar reader."""
    with tarfile.open(fileobj=io.BytesIO(bundle), mode="r:") as tar:
        out = []
        for info in tar.getmembers():
            f = tar.extractfile(info)
            out.append((info.name, f.read() if f is not None else b""))
        return out


def make_tar(entries: list[tarfile.TarInfo | tuple[str, bytes]]) -> bytes:
    """A tar of (name, data) regular files and ready-made TarInfo headers (links, devices)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                tar.addfile(entry)
            else:
                name, data = entry
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def trust_each_other(publisher: Box, importer: Box) -> keys.PublicKey:
    key = keys.create_key(publisher.settings.paths, "central")
    keys.trust_key(importer.settings.paths, key.line)
    return key


def error_of(response: Any) -> tuple[int, str, str]:
    body = response.get_json()
    assert body is not None and set(body) == {"error"}, response.get_data()[:300]
    return response.status_code, body["error"]["code"], body["error"]["message"]


def nothing_written(box: Box) -> None:
    """No model, version or alias rows, no blob file, no temp file: the box as it was."""
    conn = sqlite3.connect(box.settings.paths.database)
    try:
        counts = {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                  for t in ("models", "versions", "aliases")}
    finally:
        conn.close()
    assert counts == {"models": 0, "versions": 0, "aliases": 0}
    assert [p for p in box.settings.paths.blobs.rglob("*") if p.is_file()] == []
    assert list(box.settings.paths.tmp.iterdir()) == []
