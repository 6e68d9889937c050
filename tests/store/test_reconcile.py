"""Startup reconciliation and `doctor`, on data dirs left in the states a crash can leave."""

from __future__ import annotations

import time

from app.store import NewVersion, Store
from app.store.doctor import run_doctor
from app.store.reconcile import reconcile
from app.store.trash import TRASH_PREFIX


def add(store: Store, model: str, data: bytes) -> object:
    temp, sha, size = store.blobs.receive(iter([data]))
    return store.add_version(model, temp, sha, size, NewVersion(format="skops"))


def insert_pending(store: Store, model: str, sha: str, size: int) -> None:
    """The row state between 'pending committed' and 'file placed' in `Store.add_version`."""
    store.create_model(model)
    now = time.time()
    with store.db.write() as conn:
        model_id = conn.execute("SELECT id FROM models WHERE name = ?", (model,)).fetchone()[0]
        conn.execute(
            "INSERT INTO versions (model_id, version, status, format, sha256, size, created_at, "
            "updated_at) VALUES (?, 1, 'pending', 'skops', ?, ?, ?, ?)",
            (model_id, sha, size, now, now),
        )


def test_temp_files_and_orphan_blobs_are_removed(store: Store) -> None:
    keep = add(store, "m", b"keep")
    temp, _, _ = store.blobs.receive(iter([b"half an upload"]))
    orphan_sha, _ = store.blobs.write_bytes(b"placed but never recorded")
    report = reconcile(store)
    assert report.temp_removed == 1 and report.orphans_removed == 1
    assert not temp.exists()
    assert not store.blobs.exists(orphan_sha)
    assert store.blobs.verify(keep.sha256)


def test_pending_with_its_file_becomes_ready_without_it_failed(store: Store) -> None:
    sha, size = store.blobs.write_bytes(b"durable")
    insert_pending(store, "placed", sha, size)
    insert_pending(store, "lost", "ab" * 32, 10)
    before = store.revision()
    report = reconcile(store)
    assert (report.pending_ready, report.pending_failed) == (1, 1)
    assert store.get_version("placed", 1).status == "ready"
    lost = store.get_version("lost", 1)
    assert lost.status == "failed" and "interrupted" in lost.status_message
    assert store.revision() > before


def test_uncommitted_delete_puts_the_file_back(store: Store) -> None:
    v = add(store, "m", b"still wanted")
    path = store.blob_path(v)
    path.replace(store.paths.tmp / f"{TRASH_PREFIX}{v.sha256}")  # renamed, then the crash
    report = reconcile(store)
    assert report.restored == 1
    assert store.blobs.verify(v.sha256)
    assert store.get_version("m", 1).status == "ready"


def test_ready_version_whose_file_vanished_is_corrupt(store: Store) -> None:
    v = add(store, "m", b"gone")
    store.blob_path(v).unlink()
    assert reconcile(store).missing_corrupt == 1
    assert store.get_version("m", 1).status == "corrupt"


def test_clean_store_is_left_alone(store: Store) -> None:
    add(store, "m", b"x")
    before = store.revision()
    assert not reconcile(store).changed()
    assert store.revision() == before


def test_doctor_finds_a_flipped_byte_and_marks_it_corrupt(store: Store) -> None:
    good = add(store, "good", b"fine")
    bad = add(store, "bad", b"will be damaged")
    path = store.blob_path(bad)
    data = bytearray(path.read_bytes())
    data[3] ^= 0xFF
    path.write_bytes(bytes(data))
    report = run_doctor(store)
    assert report.integrity == "ok"
    assert report.checked == 2 and report.ok == 1
    assert not report.healthy
    assert "bad version 1" in report.render()
    assert store.get_version("bad", 1).status == "corrupt"
    assert store.get_version("good", good.version).status == "ready"
    path.write_bytes(b"will be damaged")
    assert run_doctor(store).healthy
    assert store.get_version("bad", 1).status == "ready"
