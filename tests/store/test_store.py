"""The store over a real SQLite file and real blob files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from app.config import Paths
from app.errors import BadRequest, Conflict, InvalidName, NotFound, SchemaTooNew
from app.store import NewVersion, Store
from app.store.blobs import file_sha256
from app.store.db import SCHEMA_VERSION


def add(store: Store, model: str, data: bytes = b"model-bytes", **fields: object) -> object:
    temp, sha, size = store.blobs.receive(iter([data]))
    return store.add_version(model, temp, sha, size, NewVersion(format="skops", **fields))


def test_pragmas_and_schema(store: Store) -> None:
    conn = store.db.connection()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_newer_schema_is_refused_and_untouched(tmp_path: Path) -> None:
    paths = Paths(tmp_path)
    Store(paths).close()
    conn = sqlite3.connect(paths.database)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.close()
    before = paths.database.read_bytes()
    with pytest.raises(SchemaTooNew, match="newer ModelDepot"):
        Store(paths)
    assert paths.database.read_bytes() == before


def test_versions_number_up_and_are_ready_with_their_file(store: Store) -> None:
    v1 = add(store, "iris", b"one")
    v2 = add(store, "iris", b"two")
    assert (v1.version, v2.version) == (1, 2)
    assert v2.status == "ready"
    assert file_sha256(store.blob_path(v2)) == v2.sha256
    assert store.get_model("iris").latest_version == 2
    assert not list(store.paths.tmp.iterdir())


def test_version_numbers_are_never_reused(store: Store) -> None:
    add(store, "iris", b"one")
    add(store, "iris", b"two")
    store.delete_version("iris", 2)
    assert add(store, "iris", b"three").version == 3


def test_revision_bumps_on_every_change(store: Store) -> None:
    seen = [store.revision()]
    store.create_model("m")
    seen.append(store.revision())
    add(store, "m")
    seen.append(store.revision())
    store.set_alias("m", "production", 1)
    seen.append(store.revision())
    store.update_model("m", description="d")
    seen.append(store.revision())
    store.delete_alias("m", "production")
    seen.append(store.revision())
    assert seen == sorted(set(seen))


def test_one_upload_bumps_the_revision_once(store: Store) -> None:
    """Inference refreshes on every bump: a new version, its twin build queued by the hook,
    must cost it one refresh, not three."""
    from app.store.twins import mark_queued

    before = store.revision()
    record = add(store, "m")
    assert mark_queued(store, record.id)  # type: ignore[attr-defined]
    assert store.revision() == before + 1


def test_resolve_prefers_production_then_latest(store: Store) -> None:
    add(store, "m", b"1")
    add(store, "m", b"2")
    assert store.resolve("m").version == 2
    store.set_alias("m", "production", 1)
    assert store.resolve("m").version == 1
    assert store.resolve("m", "latest").version == 2
    assert store.resolve("m", "2").version == 2
    assert store.resolve("m", "production").version == 1
    with pytest.raises(NotFound):
        store.resolve("m", "staging")
    with pytest.raises(NotFound):
        store.resolve("m", "9")


def test_latest_skips_versions_that_are_not_ready(store: Store) -> None:
    add(store, "m", b"1")
    v2 = add(store, "m", b"2")
    store.set_status(v2.id, "corrupt", "bad")
    assert store.resolve("m").version == 1
    with pytest.raises(Conflict):
        store.set_alias("m", "production", 2)


def test_same_content_twice_shares_one_file_until_both_go(store: Store) -> None:
    a = add(store, "a", b"same")
    b = add(store, "b", b"same")
    assert a.sha256 == b.sha256
    assert store.delete_model("a") == 0  # still used by b
    assert store.blob_path(b).exists()
    assert store.delete_model("b") == len(b"same")
    assert not store.blob_path(b).exists()


def test_delete_refuses_aliased_unless_forced(store: Store) -> None:
    add(store, "m")
    store.set_alias("m", "production", 1)
    with pytest.raises(Conflict, match="production"):
        store.delete_version("m", 1)
    with pytest.raises(Conflict, match="production"):
        store.delete_model("m")
    assert store.delete_model("m", force=True) == len(b"model-bytes")
    with pytest.raises(NotFound):
        store.get_model("m")


def test_tags_merge_and_delete(store: Store) -> None:
    store.create_model("m", tags={"team": "a", "env": "x"})
    record = store.update_model("m", tags={"team": "b", "env": ""})
    assert record.tags == {"team": "b"}


def test_search_and_pagination(store: Store) -> None:
    for i in range(25):
        store.create_model(f"model-{i:02d}", tags={"parity": "even" if i % 2 == 0 else "odd"})
    page, token = store.list_models(limit=10)
    names = [m.name for m in page]
    while token:
        page, token = store.list_models(limit=10, page_token=token)
        names += [m.name for m in page]
    assert names == [f"model-{i:02d}" for i in range(25)]
    found, _ = store.list_models(q="1", tags=[("parity", "odd")])
    assert [m.name for m in found] == ["model-01", "model-11", "model-13", "model-15",
                                       "model-17", "model-19", "model-21"]
    found, _ = store.list_models(q="%")
    assert found == []
    with pytest.raises(BadRequest):
        store.list_models(page_token="not-a-token!")


@pytest.mark.parametrize("bad", ["", "../x", "a/b", "-lead", "x" * 129, "ümlaut", "a b",
                                 "a\x00", "a\n"])
def test_bad_names_are_refused(store: Store, bad: str) -> None:
    with pytest.raises(InvalidName):
        store.create_model(bad)


@pytest.mark.parametrize("bad", ["123", "latest", "../x", "a/b"])
def test_bad_aliases_are_refused(store: Store, bad: str) -> None:
    add(store, "m")
    with pytest.raises(InvalidName):
        store.set_alias("m", bad, 1)


def test_a_new_shard_folder_is_made_durable_before_its_first_blob(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.store import blobs as blobs_module

    synced: list[Path] = []
    real = blobs_module.fsync_dir
    monkeypatch.setattr(blobs_module, "fsync_dir", lambda p: (synced.append(p), real(p)))
    sha, _ = store.blobs.write_bytes(b"first blob of its shard")
    shard = store.blobs.path(sha).parent
    # blobs/ (the shard's new entry) before the shard (the file's entry): a power cut between
    # the commit and the next sync can lose neither.
    assert synced == [shard.parent, shard]
    synced.clear()
    store.blobs.write_bytes(b"first blob of its shard")  # stored already: nothing to sync
    assert synced == []


def test_the_evaluation_migration_keeps_jobs_and_their_logs(tmp_path: Path) -> None:
    """Rebuilding the jobs table (for the `evaluate` kind) keeps every job row and log line."""
    from app.store import schema
    from app.store.db import migrate

    paths = Paths(tmp_path)
    paths.home.mkdir(exist_ok=True)
    conn = sqlite3.connect(paths.database, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    for number, script in enumerate(schema.MIGRATIONS[:3], start=1):
        conn.executescript(script)
        conn.execute(f"PRAGMA user_version = {number}")
    conn.execute("INSERT INTO jobs (id, kind, status, spec, created_at) "
                 "VALUES ('j1', 'train', 'succeeded', '{}', 1.0)")
    conn.executemany("INSERT INTO job_log (job_id, seq, at, line) VALUES ('j1', ?, 1.0, ?)",
                     [(1, "Queued train job."), (2, "Job succeeded.")])
    conn.row_factory = sqlite3.Row
    migrate(conn)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert [r["line"] for r in conn.execute("SELECT line FROM job_log ORDER BY seq")] == [
        "Queued train job.", "Job succeeded."]
    conn.execute("INSERT INTO jobs (id, kind, status, spec, created_at) "
                 "VALUES ('j2', 'evaluate', 'queued', '{}', 2.0)")
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO jobs (id, kind, status, spec, created_at) "
                     "VALUES ('j3', 'nonsense', 'queued', '{}', 2.0)")
    conn.execute("DELETE FROM jobs WHERE id = 'j1'")  # the log still follows its job
    assert conn.execute("SELECT COUNT(*) FROM job_log").fetchone()[0] == 0
    conn.close()
