"""kill -9 of a real registry during concurrent uploads loses nothing that was acknowledged."""

from __future__ import annotations

import random
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from app.client import Client, ClientError
from app.config import Paths
from app.store import Store
from app.store.blobs import file_sha256
from app.store.references import referenced_digests
from tests.conftest import TOKEN
from tests.live import free_port, start_registry, stop
from tests.models import iris_model, write_skops

ROUNDS = 8
UPLOADERS = 4


@pytest.mark.slow
def test_sigkill_during_concurrent_uploads(tmp_path: Path) -> None:
    files = [write_skops(tmp_path / f"m{i}.skops", iris_model(C=0.5 + i)) for i in range(6)]
    home = tmp_path / "home"
    rng = random.Random(1234)
    acknowledged: list[tuple[str, int, str]] = []
    lock = threading.Lock()

    for round_no in range(ROUNDS):
        port = free_port()
        proc = start_registry(home, port)
        client = Client(f"http://127.0.0.1:{port}", TOKEN, timeout=10)
        stop_flag = threading.Event()

        def uploader(worker: int, client: Client = client, stop_flag: threading.Event = stop_flag,
                     round_no: int = round_no) -> None:
            while not stop_flag.is_set():
                path = rng.choice(files)
                try:
                    v = client.upload(f"model-{worker}", path, {"tags": {"round": str(round_no)}})
                except (ClientError, OSError):
                    return  # the server died under us: this upload was never acknowledged
                with lock:
                    acknowledged.append((v["model"], v["version"], v["sha256"]))

        threads = [threading.Thread(target=uploader, args=(w,)) for w in range(UPLOADERS)]
        for t in threads:
            t.start()
        # Kill at a random moment once the server is busy: after its first acknowledged upload
        # (the first one waits for scikit-learn's import), while the others are mid-flight.
        before = len(acknowledged)
        deadline = time.monotonic() + 30
        while len(acknowledged) == before and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        stop_flag.set()
        for t in threads:
            t.join(30)
        stop(proc)

    # One more start runs reconciliation; then inspect everything through the API and on disk.
    port = free_port()
    proc = start_registry(home, port)
    try:
        client = Client(f"http://127.0.0.1:{port}", TOKEN)
        assert len(acknowledged) > ROUNDS  # the kills really hit a busy server
        for model, version, sha in acknowledged:
            v = client.request("GET", f"/api/v1/models/{model}/versions/{version}")
            assert v["status"] == "ready", (model, version, v["status"])
            assert v["sha256"] == sha
    finally:
        stop(proc)
    store = Store(Paths(home))
    conn = store.db.connection()
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT COUNT(*) FROM versions WHERE status = 'pending'").fetchone()[0] == 0
    for (sha,) in conn.execute("SELECT sha256 FROM versions WHERE status = 'ready'"):
        assert file_sha256(store.blobs.path(sha)) == sha
    # Model files of servable versions, and what derives from them: served copies, twins,
    # load caches (the store's own rule, app/store/references.py).
    referenced = referenced_digests(conn, servable_only=True)
    assert set(store.blobs.all_digests()) == referenced  # no orphan files left behind
    assert not list((home / "tmp").iterdir())
    store.close()
    sqlite3.connect(home / "modeldepot.db").close()
