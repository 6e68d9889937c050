"""`modeldepot backup FILE` and `modeldepot restore FILE`: a whole data dir in one file.

Backup runs beside a live `serve`. The database is copied with SQLite's online backup API in one
step, which reads one consistent snapshot however many writers are busy. The snapshot names the
files it needs (versions, their served copies and twins, datasets: references.py); each is read
from the blob store and hashed on the way into the archive. Versions still `pending` in the
snapshot (an upload half-way) are left out of the copy: nothing refers to them yet. If a file
went missing between the snapshot and its copy (a delete that committed meanwhile), the backup
is taken again from a fresh snapshot. The token, config.toml and the keys folder come along.

The archive is an uncompressed tar (model files compress poorly, and the backup must not need
memory or CPU the box does not have): `backup.json` (what is inside, with each file's sha256),
`modeldepot.db`, `blobs/<xx>/<sha256>`, `token`, `config.toml`, `keys/<name>`. It is written to a
temp file beside FILE and renamed when complete.

Restore goes into a stopped, empty data dir (`--force` clears one first). Every member name is
checked against that list before anything is written (no name in the file becomes a path by
itself), every file is hashed against backup.json, and a database from a newer release is
refused, all in a staging folder inside the data dir; only then are the parts moved into place.
The doctor's check follows.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from app import __version__
from app.atomic import fsync_dir
from app.config import Paths
from app.errors import BadRequest, Conflict, SchemaTooNew
from app.store.blobs import CHUNK
from app.store.db import SCHEMA_VERSION, check_schema
from app.store.references import referenced_digests

FORMAT = "modeldepot-backup"
FORMAT_VERSION = 1
MANIFEST = "backup.json"
DATABASE = "modeldepot.db"
SMALL_FILES = ("token", "config.toml")
KEYS = "keys"
ATTEMPTS = 3
_BLOB_MEMBER = re.compile(r"blobs/([0-9a-f]{2})/([0-9a-f]{64})")
_KEY_MEMBER = re.compile(r"keys/([A-Za-z0-9][A-Za-z0-9._-]{0,127})")
MAX_SMALL_FILE = 1 << 20  # token, config, a key: tiny; a bigger one is not ours


class FileVanished(Exception):
    """A file the snapshot needs was deleted before it was copied: take the snapshot again."""


@dataclass
class BackupReport:
    path: Path
    versions: int = 0
    datasets: int = 0
    files: int = 0
    bytes: int = 0
    left_out_pending: int = 0
    attempts: int = 1

    def render(self) -> str:
        lines = [f"backup written to {self.path}: {self.versions} version(s), "
                 f"{self.datasets} dataset(s), {self.files} file(s), {self.bytes} bytes"]
        if self.left_out_pending:
            lines.append(f"left out {self.left_out_pending} upload(s) still in progress")
        return "\n".join(lines)


@dataclass
class RestoreReport:
    versions: int = 0
    datasets: int = 0
    files: int = 0
    schema_from: int = 0
    made_by: str = ""
    notes: list[str] = field(default_factory=list)


# -- backup -----------------------------------------------------------------------------------

def backup(paths: Paths, target: Path) -> BackupReport:
    """Write a consistent backup of the data dir at `paths` to `target` (replaced if present)."""
    if not paths.database.is_file():
        raise BadRequest(f"No database at {paths.database}: there is nothing to back up.")
    target = target.resolve()
    for attempt in range(1, ATTEMPTS + 1):
        try:
            report = _backup_once(paths, target)
        except FileVanished:
            if attempt == ATTEMPTS:
                raise Conflict("Files kept being deleted while the backup copied them; run it "
                               "again when fewer deletes are under way.") from None
            continue
        report.attempts = attempt
        return report
    raise AssertionError("unreachable")


def _backup_once(paths: Paths, target: Path) -> BackupReport:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    temp = Path(temp_name)
    report = BackupReport(target)
    try:
        with tempfile.TemporaryDirectory(prefix="backup-", dir=paths.tmp) as work:
            snapshot = Path(work) / DATABASE
            digests = _snapshot(paths.database, snapshot, report)
            with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w") as tar:
                blobs = {sha: _add_blob(tar, paths, sha) for sha in sorted(digests)}
                _add_path(tar, snapshot, DATABASE)
                extras = [name for name in SMALL_FILES if (paths.home / name).is_file()]
                for name in extras:
                    _add_path(tar, paths.home / name, name)
                keys = _key_files(paths.home / KEYS)
                for key in keys:
                    _add_path(tar, key, f"{KEYS}/{key.name}")
                _add_bytes(tar, MANIFEST, json.dumps({
                    "format": FORMAT, "format_version": FORMAT_VERSION,
                    "modeldepot": __version__, "schema": SCHEMA_VERSION,
                    "created_at": time.time(), "blobs": blobs,
                    "files": extras + [f"{KEYS}/{k.name}" for k in keys],
                }, indent=1).encode())
                raw.flush()
                os.fsync(raw.fileno())
        report.files = len(blobs)
        report.bytes = sum(blobs.values())
        os.replace(temp, target)
        fsync_dir(target.parent)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return report


def _snapshot(database: Path, copy: Path, report: BackupReport) -> set[str]:
    """Copy the live database in one backup step (one read snapshot), drop pending versions from
    the copy, and return the digests the copy refers to."""
    source = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True)
    target = sqlite3.connect(copy, isolation_level=None)
    try:
        source.backup(target, pages=-1)
        # The copy is a plain file, not WAL: one file in the archive, and restore switches back.
        target.execute("PRAGMA journal_mode = DELETE")
        target.execute("PRAGMA foreign_keys = ON")
        report.left_out_pending = target.execute(
            "DELETE FROM versions WHERE status = 'pending'").rowcount
        report.versions = target.execute("SELECT COUNT(*) FROM versions").fetchone()[0]
        report.datasets = target.execute("SELECT COUNT(*) FROM datasets").fetchone()[0]
        return referenced_digests(target, servable_only=True)
    finally:
        target.close()
        source.close()


class _Hashing:
    """A file reader that hashes what passes through it."""

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._f.read(size)
        self.digest.update(data)
        return data


def _add_blob(tar: tarfile.TarFile, paths: Paths, sha: str) -> int:
    path = paths.blobs / sha[:2] / sha
    try:
        f = path.open("rb")
    except FileNotFoundError:
        raise FileVanished(sha) from None
    with f:
        size = os.fstat(f.fileno()).st_size
        info = tarfile.TarInfo(f"blobs/{sha[:2]}/{sha}")
        info.size, info.mtime, info.mode = size, int(time.time()), 0o600
        reader = _Hashing(f)
        tar.addfile(info, reader)  # tarfile only calls read()
    if reader.digest.hexdigest() != sha:
        raise BadRequest(
            f"The stored file {sha[:12]}... no longer matches its sha256, so it cannot be backed "
            "up as it is. Run `modeldepot doctor` (it marks the version corrupt), then delete "
            "or replace that version and back up again.")
    return size


def _add_path(tar: tarfile.TarFile, path: Path, name: str) -> None:
    tar.add(path, arcname=name, recursive=False)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), int(time.time()), 0o600
    tar.addfile(info, io.BytesIO(data))


def _key_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and _KEY_MEMBER.fullmatch(f"{KEYS}/{p.name}"))


# -- restore ----------------------------------------------------------------------------------

def is_empty(home: Path) -> bool:
    return not home.exists() or not any(home.iterdir())


def restore(paths: Paths, source: Path, *, force: bool = False) -> RestoreReport:
    """Unpack `source` into the (stopped) data dir at `paths`. The caller checks that no
    `serve` runs there; the doctor's check is the caller's next step."""
    home = paths.home
    if not is_empty(home) and not force:
        raise Conflict(
            f"The data dir {home} is not empty. Restore goes into an empty data dir (set "
            "MODELDEPOT_HOME or --home to a new folder), or repeat with --force to replace "
            "what is there.", code="not_empty")
    if not source.is_file():
        raise BadRequest(f"There is no backup file at {source}.")
    try:
        archive = tarfile.open(source, mode="r:")
    except tarfile.ReadError as exc:
        raise BadRequest(f"{source} is not a ModelDepot backup (not a tar archive).") from exc
    home.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".restore-", dir=home))
    try:
        with archive:
            report = _unpack(archive, staging, source)
        if force:
            _clear(home, keep=staging)
        _move_into_place(staging, home)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report


def _unpack(archive: tarfile.TarFile, staging: Path, source: Path) -> RestoreReport:
    manifest: dict[str, Any] | None = None
    seen_blobs: dict[str, int] = {}
    seen_files: set[str] = set()
    for member in archive:
        name = member.name
        if not member.isfile():
            raise BadRequest(f"{source}: member {name[:80]!r} is not a plain file.")
        blob = _BLOB_MEMBER.fullmatch(name)
        if blob and blob.group(2).startswith(blob.group(1)):
            sha = blob.group(2)
            seen_blobs[sha] = _extract_checked(archive, member, staging / "blobs" / sha[:2] / sha,
                                               sha)
        elif name in (MANIFEST, DATABASE, *SMALL_FILES) or _KEY_MEMBER.fullmatch(name):
            if name != DATABASE and member.size > MAX_SMALL_FILE:
                raise BadRequest(f"{source}: {name} is larger than a ModelDepot backup writes.")
            target = staging / (name if name != MANIFEST else ".manifest")
            _extract_checked(archive, member, target, None)
            if name == MANIFEST:
                manifest = _read_manifest(target, source)
            else:
                seen_files.add(name)
        else:
            raise BadRequest(f"{source}: unexpected member {name[:80]!r}; it is not a ModelDepot "
                             "backup, or it was changed.")
    if manifest is None or DATABASE not in seen_files:
        raise BadRequest(f"{source} is not a complete ModelDepot backup (no {MANIFEST} or no "
                         "database); it may have been cut short.")
    expected = {str(k): int(v) for k, v in manifest["blobs"].items()}
    if seen_blobs != expected:
        missing = sorted(set(expected) - set(seen_blobs))
        raise BadRequest(f"{source} does not hold the files its {MANIFEST} lists "
                         f"({len(missing)} missing, {len(set(seen_blobs) - set(expected))} extra"
                         f"{', sizes differ' if not missing else ''}); it may be damaged.")
    (staging / ".manifest").unlink()
    conn = sqlite3.connect(staging / DATABASE)
    try:
        schema = check_schema(conn)
        versions = conn.execute("SELECT COUNT(*) FROM versions").fetchone()[0]
        datasets = conn.execute("SELECT COUNT(*) FROM datasets").fetchone()[0]
    except SchemaTooNew as exc:
        raise SchemaTooNew(
            f"The backup was made by ModelDepot {manifest.get('modeldepot', '?')}, which is "
            f"newer than this one ({__version__}): {exc.message}") from exc
    finally:
        conn.close()
    return RestoreReport(versions=versions, datasets=datasets, files=len(seen_blobs),
                         schema_from=schema, made_by=str(manifest.get("modeldepot", "?")))


def _read_manifest(path: Path, source: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"{source}: {MANIFEST} is not valid JSON.") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT or \
            not isinstance(data.get("blobs"), dict):
        raise BadRequest(f"{source} is not a ModelDepot backup ({MANIFEST} does not say so).")
    if int(data.get("format_version", 0)) > FORMAT_VERSION:
        raise BadRequest(f"{source} was written in a newer backup format "
                         f"({data['format_version']}); restore it with a newer ModelDepot.")
    return data


def _extract_checked(archive: tarfile.TarFile, member: tarfile.TarInfo, target: Path,
                     sha: str | None) -> int:
    """Copy one member to `target` (fsynced), hashing it against `sha` when given."""
    reader = archive.extractfile(member)
    if reader is None:
        raise BadRequest(f"Member {member.name[:80]!r} has no data.")
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with reader, target.open("wb") as out:
        while chunk := reader.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    if sha is not None and digest.hexdigest() != sha:
        raise BadRequest(f"The file {sha[:12]}... in the backup does not match its sha256: the "
                         "backup is damaged. Nothing was restored.")
    return member.size


def _clear(home: Path, keep: Path) -> None:
    """--force: remove what a data dir holds (not the staging folder, not logs)."""
    for entry in home.iterdir():
        if entry == keep or entry.name == "logs":
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _move_into_place(staging: Path, home: Path) -> None:
    """Rename the staged parts into the data dir (same file system: each rename is atomic),
    the database last, so a data dir with a database always has its files."""
    for entry in sorted(staging.iterdir(), key=lambda p: p.name == DATABASE):
        entry.replace(home / entry.name)
    for name in SMALL_FILES:
        with contextlib.suppress(FileNotFoundError):
            (home / name).chmod(0o600)
    fsync_dir(home)
