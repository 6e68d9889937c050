"""Retention over a real store: which versions and datasets go, which stay, and the bytes freed
match the files that really disappear (app/store/retention.py)."""

from __future__ import annotations

import time

from app.store import Store, VersionRecord
from app.store.datasets import Column
from app.store.retention import DAY, Policy, collect
from tests.store.test_store import add

COLUMNS = (Column("x", "number", 0, 3),)


def versions_of(store: Store, model: str) -> list[int]:
    records, _ = store.list_versions(model)
    return sorted(r.version for r in records)


def add_many(store: Store, model: str, count: int) -> list[VersionRecord]:
    return [add(store, model, f"{model}-{n}".encode()) for n in range(count)]  # type: ignore[misc]


def blob_count(store: Store) -> int:
    return len(list(store.blobs.all_digests()))


def test_keep_all_by_default_removes_nothing(store: Store) -> None:
    add_many(store, "iris", 4)
    report = collect(store, Policy())
    assert (report.versions, report.datasets, report.bytes_freed) == ([], [], 0)
    assert versions_of(store, "iris") == [1, 2, 3, 4]


def test_newest_n_stay_and_old_files_are_freed(store: Store) -> None:
    made = add_many(store, "iris", 5)
    before = blob_count(store)
    report = collect(store, Policy(keep_versions=2))
    assert report.versions == ["iris version 3", "iris version 2", "iris version 1"]
    assert versions_of(store, "iris") == [4, 5]
    assert report.bytes_freed == sum(r.size or 0 for r in made[:3])
    assert blob_count(store) == before - 3
    assert not list(store.paths.tmp.iterdir())


def test_aliases_jobs_and_the_served_version_are_kept(store: Store) -> None:
    made = add_many(store, "iris", 6)
    store.set_alias("iris", "staging", 1)
    store.jobs.create("evaluate", {"version_id": made[1].id, "model": "iris", "version": 2})
    # A compile job (twin, load cache) keeps nothing: it ends on a deleted version.
    store.jobs.create("compile", {"version_id": made[2].id, "model": "iris", "version": 3})
    store.set_status(made[5].id, "failed", "test: the newest did not finish")
    # Newest two by number are 5 and 6; 6 failed, so the served one is 5 (newest ready).
    collect(store, Policy(keep_versions=2))
    assert versions_of(store, "iris") == [1, 2, 5, 6]


def test_a_shared_file_stays_while_another_version_names_it(store: Store) -> None:
    add(store, "a", b"same bytes")
    add(store, "a", b"newer")
    add(store, "b", b"same bytes")
    report = collect(store, Policy(keep_versions=1))
    assert report.versions == ["a version 1"]
    assert report.bytes_freed == 0  # b version 1 still names the file
    assert store.blobs.exists(store.get_version("b", 1).sha256 or "")


def test_dry_run_reports_exactly_what_a_real_run_frees(store: Store) -> None:
    add_many(store, "iris", 4)
    revision = store.revision()
    dry = collect(store, Policy(keep_versions=1), dry_run=True)
    assert dry.dry_run and len(dry.versions) == 3 and dry.bytes_freed > 0
    assert versions_of(store, "iris") == [1, 2, 3, 4]
    assert store.revision() == revision
    real = collect(store, Policy(keep_versions=1))
    assert (sorted(real.versions), real.bytes_freed) == (sorted(dry.versions), dry.bytes_freed)
    assert store.revision() == revision + 1


def test_model_tag_overrides_the_setting(store: Store) -> None:
    add_many(store, "kept", 3)
    add_many(store, "trimmed", 3)
    add_many(store, "odd", 3)
    store.update_model("kept", tags={"keep_versions": "all"})
    store.update_model("trimmed", tags={"keep_versions": "1"})
    store.update_model("odd", tags={"keep_versions": "two"})
    report = collect(store, Policy(keep_versions=2))
    assert versions_of(store, "kept") == [1, 2, 3]
    assert versions_of(store, "trimmed") == [3]
    assert versions_of(store, "odd") == [1, 2, 3]
    assert any("odd" in note and "'two'" in note for note in report.notes)
    # With no setting at all, a tag alone still trims its model.
    add_many(store, "trimmed", 2)
    collect(store, Policy())
    assert versions_of(store, "trimmed") == [5]


def test_only_the_named_model_is_trimmed(store: Store) -> None:
    add_many(store, "a", 3)
    add_many(store, "b", 3)
    collect(store, Policy(keep_versions=1), model="a")
    assert (versions_of(store, "a"), versions_of(store, "b")) == ([3], [1, 2, 3])


def test_old_datasets_go_unless_a_running_job_reads_them(store: Store) -> None:
    ids = []
    for n in range(3):
        temp, sha, size = store.blobs.receive(iter([f"x\n{n}\n".encode()]))
        store.datasets.add(temp, sha, size, f"d{n}.csv", 1, COLUMNS)
        ids.append(sha)
    store.jobs.create("train", {"dataset": ids[0]})
    report = collect(store, Policy(keep_datasets_days=1), now=time.time() + 2 * DAY)
    assert len(report.datasets) == 2
    assert [d.id for d in store.datasets.list_datasets()] == [ids[0]]
    assert not store.blobs.exists(ids[1]) and store.blobs.exists(ids[0])
    # Young datasets stay.
    temp, sha, size = store.blobs.receive(iter([b"x\n9\n"]))
    store.datasets.add(temp, sha, size, "young.csv", 1, COLUMNS)
    assert collect(store, Policy(keep_datasets_days=1)).datasets == []
