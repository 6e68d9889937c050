"""kill -9 of a real registry at random moments of bundle imports, many rounds: after the next
start (its reconciliation) the box holds the whole bundle or none of it, no file that nothing
references, no temp file."""

from __future__ import annotations

import random
import signal
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

from app.client import Client, ClientError
from app.config import Paths
from app.store.blobs import BlobStore
from app.store.references import referenced_digests
from tests.conftest import TOKEN
from tests.fleet.conftest import Box, box_settings, export, publish, trust_each_other
from tests.inference.conftest import add_version
from tests.live import free_port, start_registry, stop
from tests.registry.conftest import registry_app

ROUNDS = 8
LONGEST_IMPORT_S = 8.0  # a first import on a busy 2-core box (scikit-learn's import included)
LARGE_MODELS = 3


def _bundle(tmp: Path, importer_home: Path) -> tuple[Path, int]:
    """A signed bundle of three small and three ~8 MB models; the importer trusts its key."""
    settings = box_settings(tmp / "publisher")
    with registry_app(settings) as application:
        box = Box(settings, application)
        publish(box, tmp)
        rng = np.random.default_rng(0)
        for i in range(LARGE_MODELS):
            X = rng.normal(size=(100_000, 10))
            knn = KNeighborsClassifier(n_neighbors=3).fit(X, (X[:, 0] > 0).astype(int))
            # Straight into the store: the test client would spool an 8 MB form to a temp file.
            add_version(application.extensions["modeldepot"].store, f"knn{i}", knn, tmp)
        importer = Box(box_settings(importer_home), application)  # only its key files are used
        trust_each_other(box, importer)
        data = export(box, "iris", "other", *(f"knn{i}" for i in range(LARGE_MODELS)))
    path = tmp / "big.mdbundle"
    path.write_bytes(data)
    return path, 3 + LARGE_MODELS


def _state(home: Path) -> tuple[int, int, int]:
    """(versions, aliases, pending) after checking no temp file and no unreferenced blob."""
    assert not list((home / "tmp").iterdir()), "temp files left"
    conn = sqlite3.connect(home / "modeldepot.db")
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        referenced = referenced_digests(conn, servable_only=False)  # app/store/references.py
        versions, = conn.execute("SELECT COUNT(*) FROM versions").fetchone()
        aliases, = conn.execute("SELECT COUNT(*) FROM aliases").fetchone()
        pending, = conn.execute(
            "SELECT COUNT(*) FROM versions WHERE status != 'ready'").fetchone()
    finally:
        conn.close()
    paths = Paths(home)
    assert set(BlobStore(paths.blobs, paths.tmp).all_digests()) == referenced, "orphan blobs"
    return versions, aliases, pending


@pytest.mark.slow
def test_sigkill_at_random_moments_of_imports(tmp_path: Path) -> None:
    home = tmp_path / "box" / "home"
    bundle, expected = _bundle(tmp_path, home)
    rng = random.Random(16)
    outcomes: list[str] = []
    for round_no in range(ROUNDS):
        port = free_port()
        proc = start_registry(home, port, MODELDEPOT_TWINS="false")
        client = Client(f"http://127.0.0.1:{port}", TOKEN, timeout=60)
        try:
            outcomes.append(_all_or_nothing(home, expected))
            if outcomes[-1] == "all":  # start the next round from an empty box again
                for model in client.request("GET", "/api/v1/models")["models"]:
                    client.request("DELETE", f"/api/v1/models/{model['name']}",
                                   query={"force": "true"})
            worker = threading.Thread(target=_import, args=(client, bundle), daemon=True)
            worker.start()
            # Stratified: every stretch of an import (receiving, inspecting, committing) is hit.
            time.sleep((round_no + rng.random()) * LONGEST_IMPORT_S / ROUNDS)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            worker.join(60)
        finally:
            stop(proc)
    port = free_port()
    proc = start_registry(home, port, MODELDEPOT_TWINS="false")
    try:
        outcomes.append(_all_or_nothing(home, expected))
        assert "none" in outcomes[1:], outcomes  # some kills came before the commit
        if outcomes[-1] == "none":  # and the box still imports the bundle whole afterwards
            _import(Client(f"http://127.0.0.1:{port}", TOKEN, timeout=120), bundle)
    finally:
        stop(proc)
    assert _all_or_nothing(home, expected) == "all"


def _all_or_nothing(home: Path, expected: int) -> str:
    versions, aliases, pending = _state(home)
    assert pending == 0
    assert (versions, aliases) in ((0, 0), (expected, 2)), "a partial import survived"
    return "none" if versions == 0 else "all"


def _import(client: Client, bundle: Path) -> None:
    try:
        client.request("POST", "/api/v1/bundles", body=bundle.read_bytes(),
                       headers={"Content-Type": "application/x-tar"})
    except (ClientError, OSError):
        pass  # killed under us: whatever it did must be all or nothing
