"""Twins in the store: recorded atomically, shown in version metadata, freed with their version."""

from __future__ import annotations

import pytest

from app.errors import NotFound
from app.store import NewVersion, Store, VersionRecord
from app.store.reconcile import reconcile
from app.store.twins import (
    mark_queued,
    record_twin,
    training_data,
    twin_state,
    version_by_id,
)

REPORT = {"rows": 10, "precision": "float32"}


def add(store: Store, model: str = "iris", data: bytes = b"model", fmt: str = "skops",
        **fields: object) -> VersionRecord:
    temp, sha, size = store.blobs.receive(iter([data]))
    return store.add_version(model, temp, sha, size, NewVersion(format=fmt, **fields))


def blob_files(store: Store) -> set[str]:
    return set(store.blobs.all_digests())


def test_a_verified_twin_is_placed_shown_and_bumps_the_revision(store: Store) -> None:
    version = add(store)
    assert version.to_dict()["twin"] == {"status": "none", "sha256": None, "enabled": True,
                                         "report": {}}
    before = store.revision()
    assert record_twin(store, version.id, "verified", REPORT, b"graph-one")
    assert store.revision() > before
    record = store.get_version("iris", 1)
    assert record.twin_status == "verified" and record.twin_report == REPORT
    assert record.twin_sha256 is not None and store.blobs.verify(record.twin_sha256)
    assert record.to_dict()["twin"]["sha256"] == record.twin_sha256
    assert record.sha256 == version.sha256 and record.status == "ready"  # the version is as it was
    assert twin_state(store, version.id) == ("verified", record.twin_sha256, REPORT)
    assert not list(store.paths.tmp.iterdir())


def test_a_new_outcome_retires_the_old_twin_file(store: Store) -> None:
    version = add(store)
    record_twin(store, version.id, "verified", REPORT, b"graph-one")
    first = store.get_version("iris", 1).twin_sha256
    record_twin(store, version.id, "verified", REPORT, b"graph-two")
    second = store.get_version("iris", 1).twin_sha256
    assert first != second and first not in blob_files(store) and second in blob_files(store)
    record_twin(store, version.id, "failed", {"reason": "labels differ"})
    record = store.get_version("iris", 1)
    assert (record.twin_status, record.twin_sha256) == ("failed", None)
    assert blob_files(store) == {version.sha256}


def test_a_shared_twin_file_stays_while_another_version_names_it(store: Store) -> None:
    one, two = add(store, data=b"a"), add(store, data=b"b")
    record_twin(store, one.id, "verified", REPORT, b"same-graph")
    record_twin(store, two.id, "verified", REPORT, b"same-graph")
    shared = store.get_version("iris", 1).twin_sha256
    record_twin(store, one.id, "unsupported", {"reason": "no"})
    assert shared in blob_files(store)


def test_a_twin_for_a_deleted_version_is_not_kept(store: Store) -> None:
    version = add(store)
    store.delete_version("iris", 1)
    assert not record_twin(store, version.id, "verified", REPORT, b"graph")
    assert blob_files(store) == set() and not list(store.paths.tmp.iterdir())
    with pytest.raises(NotFound):
        version_by_id(store, version.id)
    with pytest.raises(NotFound):
        twin_state(store, version.id)


def test_deleting_a_version_or_model_frees_its_twin(store: Store) -> None:
    version = add(store)
    record_twin(store, version.id, "verified", REPORT, b"graph")
    twin = store.get_version("iris", 1).twin_sha256
    store.delete_version("iris", 1)
    assert twin not in blob_files(store)
    other = add(store, "other")
    record_twin(store, other.id, "verified", REPORT, b"graph-2")
    store.delete_model("other")
    assert blob_files(store) == set()


def test_reconciliation_keeps_twins_and_removes_unnamed_ones(store: Store) -> None:
    version = add(store)
    record_twin(store, version.id, "verified", REPORT, b"graph")
    twin = store.get_version("iris", 1).twin_sha256
    stray, _ = store.blobs.write_bytes(b"a twin whose row never committed")
    reconcile(store)
    assert twin in blob_files(store) and stray not in blob_files(store)


def test_outcomes_must_be_consistent(store: Store) -> None:
    version = add(store)
    with pytest.raises(ValueError):
        record_twin(store, version.id, "verified", REPORT)
    with pytest.raises(ValueError):
        record_twin(store, version.id, "failed", REPORT, b"graph")
    with pytest.raises(ValueError):
        record_twin(store, version.id, "great", REPORT)


def test_only_ready_non_onnx_versions_are_queued(store: Store) -> None:
    skops = add(store)
    onnx = add(store, "graph", b"onnx", fmt="onnx")
    assert mark_queued(store, skops.id)
    assert store.get_version("iris", 1).twin_status == "queued"
    assert not mark_queued(store, onnx.id)
    assert not mark_queued(store, 10_000)


def test_the_tag_twin_off_is_the_per_version_switch(store: Store) -> None:
    add(store)
    assert store.get_version("iris", 1).twin_enabled
    store.update_version("iris", 1, tags={"twin": "off"})
    record = store.get_version("iris", 1)
    assert not record.twin_enabled and record.to_dict()["twin"]["enabled"] is False
    store.update_version("iris", 1, tags={"twin": ""})
    assert store.get_version("iris", 1).twin_enabled


def test_training_data_names_the_dataset_file_and_target(store: Store) -> None:
    plain = add(store)
    assert training_data(store, plain.id) is None
    dataset, _ = store.blobs.write_bytes(b"a,y\n1,0\n")
    trained = add(store, data=b"trained", dataset_id=dataset, params={"target": "y"})
    data = training_data(store, trained.id)
    assert data is not None and data.dataset_id == dataset and data.target == "y"
    assert data.path.read_bytes() == b"a,y\n1,0\n"
    gone = add(store, data=b"gone", dataset_id="0" * 64)
    assert training_data(store, gone.id) is None
