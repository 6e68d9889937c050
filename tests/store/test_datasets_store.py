"""Datasets in the store: content-addressed, deduplicated, kept by reconciliation, and not
deletable while an unfinished job reads them."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.errors import Conflict, NotFound
from app.store import Store
from app.store.datasets import Column
from app.store.reconcile import reconcile

COLUMNS = (Column("x", "number", 0, 3), Column("y", "integer", 0, 2))


def receive(store: Store, data: bytes) -> tuple[Path, str, int]:
    return store.blobs.receive(iter([data]))


def test_add_is_content_addressed_and_idempotent(store: Store) -> None:
    temp, sha, size = receive(store, b"x,y\n1.5,0\n2.5,1\n3.5,1\n")
    record, created = store.datasets.add(temp, sha, size, "first.csv", 3, COLUMNS)
    assert created and record.id == sha and record.name == "first.csv"
    assert record.columns == COLUMNS and record.row_count == 3
    assert store.blobs.verify(sha) and not temp.exists()

    temp, sha2, size = receive(store, b"x,y\n1.5,0\n2.5,1\n3.5,1\n")
    again, created = store.datasets.add(temp, sha2, size, "second.csv", 3, COLUMNS)
    assert not created and again.name == "first.csv" and not temp.exists()
    assert [d.id for d in store.datasets.list_datasets()] == [sha]


def test_names_are_display_text_only(store: Store) -> None:
    temp, sha, size = receive(store, b"x,y\n1,2\n3,4\n")
    record, _ = store.datasets.add(temp, sha, size, "../../etc/\x00passwd", 2, COLUMNS)
    assert record.name == ".._.._etc_passwd"


def test_delete_frees_the_file_and_reconcile_keeps_live_ones(store: Store) -> None:
    temp, keep, size = receive(store, b"x,y\n1,2\n3,4\n")
    store.datasets.add(temp, keep, size, "keep.csv", 2, COLUMNS)
    temp, gone, size = receive(store, b"x,y\n5,6\n7,8\n")
    store.datasets.add(temp, gone, size, "gone.csv", 2, COLUMNS)
    assert store.datasets.delete(gone) == size
    assert not store.blobs.exists(gone)
    with pytest.raises(NotFound):
        store.datasets.get(gone)
    reconcile(store)
    assert store.blobs.verify(keep)


def test_delete_refused_while_a_job_reads_it(store: Store) -> None:
    temp, sha, size = receive(store, b"x,y\n1,2\n3,4\n")
    store.datasets.add(temp, sha, size, "d.csv", 2, COLUMNS)
    job = store.jobs.create("train", {"dataset": sha})
    with pytest.raises(Conflict) as info:
        store.datasets.delete(sha)
    assert info.value.message == (
        f"Dataset {sha[:12]} is the input of job(s) {job.id} that have not finished. Cancel "
        "them or wait, then delete it.")
    store.jobs.request_cancel(job.id)
    assert store.datasets.delete(sha) == size


def test_unknown_ids_are_not_found(store: Store) -> None:
    for dataset_id in ("a" * 64, "../blobs", ""):
        with pytest.raises(NotFound) as info:
            store.datasets.get(dataset_id)
        assert "POST /api/v1/datasets" in info.value.message
