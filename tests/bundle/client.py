"""What the bundle tests do to a running binary over HTTP, as any client would: push a model
file, move an alias, predict. Shared by the bundle tests, the aarch64 comparison and the smoke
test (tests/bundle/smoke.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from tests.bundle.conftest import Bundle, scaled


def auth(bundle: Bundle) -> dict[str, str]:
    return {"Authorization": f"Bearer {bundle.token()}"}


def push(bundle: Bundle, name: str, path: Path,
         metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    with path.open("rb") as f:
        r = httpx.post(f"{bundle.registry}/api/v1/models/{name}/versions", headers=auth(bundle),
                       files={"file": (path.name, f, "application/octet-stream")},
                       data={"metadata": json.dumps(
                           metadata or {"description": "from the bundle test"})},
                       timeout=scaled(60))
    assert r.status_code == 201, r.text
    version: dict[str, Any] = r.json()
    return version


def move_alias(bundle: Bundle, name: str, alias: str, version: int) -> None:
    r = httpx.put(f"{bundle.registry}/api/v1/models/{name}/aliases/{alias}", headers=auth(bundle),
                  json={"version": version}, timeout=scaled(10))
    assert r.status_code == 200, r.text


def predict_v1(bundle: Bundle, name: str, rows: np.ndarray, version: int | None = None,
               proba: bool = False) -> dict[str, Any]:
    route = f"{name}/versions/{version}" if version is not None else name
    body: dict[str, Any] = {"instances": rows.tolist()} | ({"proba": True} if proba else {})
    r = httpx.post(f"{bundle.inference}/v1/models/{route}/predict", json=body,
                   timeout=scaled(30))
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


def served_version(bundle: Bundle, name: str, rows: np.ndarray) -> int | None:
    """The version a prediction of `name` without a version comes from; None while none is."""
    try:
        r = httpx.post(f"{bundle.inference}/v1/models/{name}/predict",
                       json={"instances": rows[:1].tolist()}, timeout=scaled(5))
    except httpx.HTTPError:
        return None
    return int(r.json()["version"]) if r.status_code == 200 else None


def engine(bundle: Bundle, name: str, version: int) -> str | None:
    """What serves a version ("scikit-learn", "onnxruntime-twin", ...); None until it loads."""
    try:
        r = httpx.get(f"{bundle.inference}/v1/models/{name}/versions/{version}",
                      timeout=scaled(30))
    except httpx.HTTPError:
        return None
    return str(r.json()["engine"]) if r.status_code == 200 else None


def logged_confinement(bundle: Bundle) -> list[str]:
    """The registry's lines at start saying how uploaded files are checked (with the seccomp
    filter or, under qemu-user, without it: app/formats/confine.py's confinement())."""
    text = bundle.log.read_text(errors="replace") if bundle.log.exists() else ""
    return [line for line in text.splitlines() if "uploaded model files are checked with" in line]
