"""Dashboard fixtures: the registry app under Flask's test client for fast tests, and a real
registry plus inference server on ephemeral ports driven by headless Chromium for the rest."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.config import Settings
from app.registry.app import create_app
from tests.conftest import TOKEN
from tests.dashboard import browser as chromium
from tests.live import free_port, server_env, start_registry, stop, wait_healthy

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
def app(settings: Settings) -> Iterator[Flask]:
    application = create_app(settings)
    yield application
    shut_down(application)


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


@dataclass
class Stack:
    home: Path
    registry_url: str
    inference_url: str
    procs: list[subprocess.Popen[bytes]]


def start_inference(home: Path, port: int, **extra: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "inference", "--inference-port", str(port)],
        env=server_env(home, **extra),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_healthy(f"http://127.0.0.1:{port}/v2/health/live", proc)
    except BaseException:
        stop(proc)
        raise
    return proc


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One real registry and inference server for every browser test, over one data dir."""
    home = tmp_path_factory.mktemp("dashboard") / "home"
    registry_port, inference_port = free_port(), free_port()
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
