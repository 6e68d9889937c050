"""Backup and restore: a backup taken while uploads run restores to a data dir where every
version is ready and hash-correct and predicts like the source; restore refuses what it must."""

from __future__ import annotations

import io
import sqlite3
import tarfile
import threading
from pathlib import Path
from typing import Any

import pytest

from app.cli import main
from app.client import Client
from app.config import Paths
from app.errors import BadRequest, Conflict, SchemaTooNew
from app.store import NewVersion, Store
from app.store.backup import backup, restore
from app.store.db import SCHEMA_VERSION
from app.store.doctor import run_doctor
from tests.conftest import TOKEN
from tests.live import free_port, start_inference, start_registry, stop
from tests.models import iris_model, iris_rows, write_skops


def fill(store: Store) -> None:
    for n in range(2):
        temp, sha, size = store.blobs.receive(iter([f"model {n}".encode()]))
        store.add_version("m", temp, sha, size, NewVersion(format="skops"))
    store.set_alias("m", "production", 1)
    store.paths.token_file.write_text("secret\n")
    (store.paths.home / "keys").mkdir()
    (store.paths.home / "keys" / "box.pub").write_bytes(b"public key bytes")


def predictions(port: int, model: str, version: int) -> Any:
    return Client(f"http://127.0.0.1:{port}", TOKEN).request(
        "POST", f"/v1/models/{model}/versions/{version}/predict",
        json_body={"instances": iris_rows(20).tolist()})


@pytest.mark.slow
def test_a_backup_during_uploads_restores_ready_and_predicting_alike(tmp_path: Path) -> None:
    source, copy = tmp_path / "source", tmp_path / "copy"
    files = [write_skops(tmp_path / f"m{n}.skops", iris_model(C=0.01 * 10 ** n)) for n in range(6)]
    registry_port = free_port()
    registry = start_registry(source, registry_port, MODELDEPOT_TWINS="false")
    servers = []
    try:
        client = Client(f"http://127.0.0.1:{registry_port}", TOKEN)
        for path in files[:2]:
            client.upload("iris", path, {})
        started = threading.Event()

        def keep_uploading() -> None:
            for path in files[2:]:
                started.set()
                client.upload("iris", path, {})

        uploader = threading.Thread(target=keep_uploading)
        uploader.start()
        started.wait()
        archive = tmp_path / "box.backup"
        assert main(["backup", str(archive), "--home", str(source)]) == 0
        uploader.join()

        assert main(["restore", str(archive), "--home", str(copy)]) == 0
        restored = Store(Paths(copy))
        try:
            records, _ = restored.list_versions("iris")
            assert len(records) >= 2 and {r.status for r in records} == {"ready"}
            assert run_doctor(restored, mark=False).healthy
        finally:
            restored.close()
        ports = free_port(), free_port()
        servers = [start_inference(source, ports[0]), start_inference(copy, ports[1])]
        for record in records:
            assert predictions(ports[1], "iris", record.version) == \
                predictions(ports[0], "iris", record.version)
    finally:
        for proc in [registry, *servers]:
            stop(proc)


def test_round_trip_keeps_rows_files_token_and_keys(store: Store, tmp_path: Path) -> None:
    fill(store)
    report = backup(store.paths, tmp_path / "b.tar")
    assert (report.versions, report.files) == (2, 2)
    target = Paths(tmp_path / "restored")
    restore(target, tmp_path / "b.tar")
    restored = Store(target)
    try:
        assert restored.get_version("m", "production").version == 1
        assert run_doctor(restored, mark=False).healthy
        assert target.token_file.read_text() == "secret\n"
        assert target.token_file.stat().st_mode & 0o077 == 0
        assert (target.home / "keys" / "box.pub").read_bytes() == b"public key bytes"
    finally:
        restored.close()


def test_restore_refuses_a_non_empty_dir_unless_forced(store: Store, tmp_path: Path) -> None:
    fill(store)
    backup(store.paths, tmp_path / "b.tar")
    other = Paths(tmp_path / "other")
    Store(other).close()
    with pytest.raises(Conflict, match="not empty"):
        restore(other, tmp_path / "b.tar")
    restore(other, tmp_path / "b.tar", force=True)
    restored = Store(other)
    try:
        assert restored.get_model("m").version_count == 2
        assert not [p for p in other.home.iterdir() if p.name.startswith(".restore-")]
    finally:
        restored.close()


def test_restore_refuses_while_serve_holds_the_data_dir(store: Store, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    from app.supervisor.lock import InstanceLock

    fill(store)
    backup(store.paths, tmp_path / "b.tar")
    home = tmp_path / "running"
    lock = InstanceLock(home)
    assert lock.acquire()
    try:
        assert main(["restore", str(tmp_path / "b.tar"), "--home", str(home)]) == 1
        assert "is running on" in capsys.readouterr().err
    finally:
        lock.release()


def damage(archive: Path, member_prefix: str, out: Path) -> None:
    """Copy the archive with one byte of the first member named `member_prefix...` flipped."""
    with tarfile.open(archive) as src, tarfile.open(out, "w") as dst:
        flipped = False
        for member in src:
            data = src.extractfile(member).read()  # type: ignore[union-attr]
            if not flipped and member.name.startswith(member_prefix):
                data = bytes([data[0] ^ 1]) + data[1:]
                flipped = True
            dst.addfile(member, io.BytesIO(data))


def test_a_damaged_backup_restores_nothing(store: Store, tmp_path: Path) -> None:
    fill(store)
    backup(store.paths, tmp_path / "b.tar")
    damage(tmp_path / "b.tar", "blobs/", tmp_path / "bad.tar")
    target = Paths(tmp_path / "restored")
    with pytest.raises(BadRequest, match="does not match its sha256"):
        restore(target, tmp_path / "bad.tar")
    assert list(target.home.iterdir()) == []
    (tmp_path / "junk.tar").write_bytes(b"not a tar at all" * 100)
    with pytest.raises(BadRequest, match="not a ModelDepot backup"):
        restore(target, tmp_path / "junk.tar")


def test_a_backup_with_a_strange_member_name_is_refused(store: Store, tmp_path: Path) -> None:
    fill(store)
    backup(store.paths, tmp_path / "b.tar")
    with tarfile.open(tmp_path / "b.tar", "a") as tar:
        info = tarfile.TarInfo("../escape")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    target = Paths(tmp_path / "restored")
    with pytest.raises(BadRequest, match="unexpected member"):
        restore(target, tmp_path / "b.tar")
    assert not (tmp_path / "escape").exists()
    assert list(target.home.iterdir()) == []


def test_a_backup_from_a_newer_release_is_refused(store: Store, tmp_path: Path) -> None:
    fill(store)
    store.close()
    conn = sqlite3.connect(store.paths.database)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(SchemaTooNew):
        Store(store.paths)
    backup(store.paths, tmp_path / "b.tar")
    target = Paths(tmp_path / "restored")
    with pytest.raises(SchemaTooNew, match="newer than this one"):
        restore(target, tmp_path / "b.tar")
    assert list(target.home.iterdir()) == []
