"""Dashboard fixtures: the registry app under Flask's test client for fast tests, and a real
registry plus inference server on ephemeral ports driven by headless Chromium for the rest."""

from __future__ import annotations

import html
import io
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.config import Settings
from app.formats.signature import signature_from_estimator
from app.registry.app import create_app
from app.store import NewVersion, Store
from tests.conftest import TOKEN
from tests.dashboard import browser as chromium
from tests.inference.conftest import IRIS_NAMES
from tests.live import free_ports, start_inference, start_registry, stop
from tests.models import iris_model, write_skops

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
ALERT = re.compile(r'role="alert"[^>]*>(.*?)</div>', re.S)
NOTICE = re.compile(r'class="notice notice-(?:ok|error)"[^>]*>(.*?)</div>', re.S)


def shut_down(application: Flask, *, close_store: bool = True) -> None:
    """End the pool workers a test started, then (unless the test owns it) close the store."""
    reg = application.extensions["modeldepot"]
    if getattr(reg, "runner", None) is not None:
        reg.runner.shutdown()
    if close_store:
        reg.store.close()


@pytest.fixture
def app(settings: Settings, store: Store) -> Iterator[Flask]:
    application = create_app(settings, store)
    yield application
    shut_down(application, close_store=False)  # the store fixture closes it


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def csrf_of(client: FlaskClient, path: str = "/") -> str:
    """Load a page (which gives the client a session cookie) and return its forms' CSRF token."""
    r = client.get(path)
    assert r.status_code == 200, r.text
    found = CSRF.search(r.text)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def login(client: FlaskClient) -> str:
    r = client.get(f"/?token={TOKEN}")
    assert r.status_code == 303 and r.location == "/"
    return csrf_of(client)


def _text(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", fragment)).strip()


def alerts(page: str) -> list[str]:
    """The texts of the page's error boxes."""
    return [_text(m) for m in ALERT.findall(page)]


def notices(page: str) -> list[str]:
    """The one-shot messages at the top of the page."""
    return [_text(m) for m in NOTICE.findall(page)]


@pytest.fixture(scope="session")
def iris_files(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, dict[str, Any]]]:
    """Two fitted iris models as skops files with their signatures, made once per run."""
    folder = tmp_path_factory.mktemp("iris")
    files = []
    for i, model in enumerate([iris_model(), iris_model(C=0.5)]):
        path = write_skops(folder / f"iris{i}.skops", model)
        files.append((path, signature_from_estimator(model).to_dict()))
    return files


def add_file(store: Store, name: str, path: Path, signature: dict[str, Any]) -> None:
    temp, sha, size = store.blobs.receive(iter([path.read_bytes()]))
    store.add_version(name, temp, sha, size, NewVersion(format="skops", signature=signature))


@pytest.fixture
def iris(store: Store, iris_files: list[tuple[Path, dict[str, Any]]]) -> Store:
    """`iris` with versions 1 and 2 (ready), production -> 1."""
    for path, signature in iris_files:
        add_file(store, "iris", path, signature)
    store.set_alias("iris", "production", 1)
    return store


@pytest.fixture
def named(store: Store, iris_files: list[tuple[Path, dict[str, Any]]]) -> Store:
    """`named`: one version whose signature names the four iris features."""
    path, signature = iris_files[0]
    add_file(store, "named", path, {**signature, "feature_names": IRIS_NAMES})
    return store


def upload(client: FlaskClient, csrf: str, model: str, content: bytes | Path, *,
           filename: str = "model.skops", **fields: str) -> object:
    data = content.read_bytes() if isinstance(content, Path) else content
    return client.post(f"/upload?csrf={csrf}", content_type="multipart/form-data",
                       data={"model": model, **fields, "file": (io.BytesIO(data), filename)})


@dataclass
class Stack:
    home: Path
    registry_url: str
    inference_url: str
    procs: list[subprocess.Popen[bytes]]


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One real registry and inference server for every browser test, over one data dir."""
    home = tmp_path_factory.mktemp("dashboard") / "home"
    registry_port, inference_port = free_ports(2)
    ports = {"MODELDEPOT_INFERENCE_PORT": str(inference_port),
             "MODELDEPOT_REGISTRY_PORT": str(registry_port),
             "MODELDEPOT_POLL_INTERVAL_MS": "50", "MODELDEPOT_LOG_LEVEL": "warning"}
    registry = start_registry(home, registry_port, **ports)
    try:
        inference = start_inference(home, inference_port, **ports)
    except BaseException:
        stop(registry)
        raise
    yield Stack(home, f"http://127.0.0.1:{registry_port}", f"http://127.0.0.1:{inference_port}",
                [registry, inference])
    for proc in (inference, registry):
        stop(proc)


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    reason = chromium.missing()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    driver = chromium.start_chromium(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    return chromium.screenshot_dir()
