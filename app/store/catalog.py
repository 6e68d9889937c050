"""The store: models, versions, aliases and tags in SQLite, model files in the blob store.

Ordering rules that make a kill -9 at any moment safe:
- a version row is inserted `pending` (with its digest) before its file is placed, and becomes
  `ready` in the same transaction that places the file, so `ready` implies a durable file;
- every change to the blob namespace (placing, retiring) happens while the SQLite write lock is
  held, so reference counts seen in that transaction stay true, across processes too;
- a retired file is first renamed into `tmp/` inside the deleting transaction and unlinked after
  the commit; startup reconciliation puts it back if the transaction did not commit.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from app.config import Paths
from app.errors import BadRequest, Conflict, NotFound
from app.store.blobs import BlobStore
from app.store.datasets import DatasetStore
from app.store.db import Database, bump_revision
from app.store.jobs import JobStore
from app.store.names import LATEST, check_alias, check_name, parse_ref
from app.store.pages import check_limit, decode_token, encode_token
from app.store.records import ModelRecord, VersionRecord
from app.store.trash import empty_trash, trash_unreferenced

SERVABLE = "ready"

VERSION_SELECT = """
    SELECT v.*, m.name AS model_name FROM versions v JOIN models m ON m.id = v.model_id
"""


class ServedFile(Protocol):
    """A fsynced temp file a version is served from instead of its own file (a pickle's skops
    copy, app/formats/sandbox.py); adopted with the version, removed if it is not."""

    @property
    def format(self) -> str: ...
    @property
    def temp(self) -> Path: ...
    @property
    def sha256(self) -> str: ...
    @property
    def size(self) -> int: ...


@dataclass(frozen=True)
class NewVersion:
    """Everything known about a version before its file is placed."""

    format: str
    format_detail: str = ""
    signature: dict[str, Any] | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    source: str = "upload"
    imported_globals: tuple[str, ...] = ()
    environment: dict[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    dataset_id: str | None = None  # the dataset a training job fitted it on
    served: ServedFile | None = None
    evaluation: dict[str, Any] = field(default_factory=dict)  # app/training/evaluation.py


def version_files(row: sqlite3.Row) -> set[str]:
    """The blobs a version row names: its file, its twin, the copy it is served from and its
    load cache."""
    return {row["sha256"], row["twin_sha256"], row["served_sha256"],
            row["load_cache_sha256"]} - {None}


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class Store:
    def __init__(self, paths: Paths, *, readonly: bool = False) -> None:
        self.paths = paths
        self.db = Database(paths.database, readonly=readonly)
        self.blobs = BlobStore(paths.blobs, paths.tmp) if not readonly else _ReadOnlyBlobs(paths)
        self.datasets = DatasetStore(self.db, self.blobs, self.paths.tmp)
        self.jobs = JobStore(self.db)

    def close(self) -> None:
        self.db.close()

    # -- revision -------------------------------------------------------------------------

    def revision(self) -> int:
        row = self.db.connection().execute("SELECT value FROM revision WHERE id = 1").fetchone()
        return int(row[0])

    # -- models ---------------------------------------------------------------------------

    def create_model(
        self, name: str, description: str = "", tags: dict[str, str] | None = None
    ) -> ModelRecord:
        check_name(name)
        with self.db.write() as conn:
            if self.model_id(conn, name, missing_ok=True) is not None:
                raise Conflict(f"Model {name!r} already exists.", code="already_exists")
            self.insert_model(conn, name, description, tags or {})
            bump_revision(conn)
        return self.get_model(name)

    def insert_model(
        self, conn: sqlite3.Connection, name: str, description: str, tags: dict[str, str]
    ) -> int:
        now = time.time()
        cur = conn.execute(
            "INSERT INTO models (name, description, created_at, updated_at) VALUES (?, ?, ?, ?)",
            (name, description, now, now),
        )
        model_id = int(cur.lastrowid or 0)
        conn.executemany(
            "INSERT INTO model_tags (model_id, key, value) VALUES (?, ?, ?)",
            [(model_id, k, v) for k, v in tags.items()],
        )
        return model_id

    def model_id(
        self, conn: sqlite3.Connection, name: str, *, missing_ok: bool = False
    ) -> int | None:
        row = conn.execute("SELECT id FROM models WHERE name = ?", (name,)).fetchone()
        if row is None:
            if missing_ok:
                return None
            raise NotFound(f"No model named {name!r}.")
        return int(row[0])

    def get_model(self, name: str) -> ModelRecord:
        check_name(name)
        with self.db.read() as conn:
            row = conn.execute("SELECT * FROM models WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise NotFound(f"No model named {name!r}.")
            return self._model_record(conn, row)

    def _model_record(self, conn: sqlite3.Connection, row: sqlite3.Row) -> ModelRecord:
        model_id = row["id"]
        tags = dict(
            conn.execute("SELECT key, value FROM model_tags WHERE model_id = ?", (model_id,))
        )
        aliases = dict(
            conn.execute(
                "SELECT a.alias, v.version FROM aliases a JOIN versions v ON v.id = a.version_id "
                "WHERE a.model_id = ? ORDER BY a.alias",
                (model_id,),
            )
        )
        latest, count = conn.execute(
            "SELECT MAX(CASE WHEN status = 'ready' THEN version END), COUNT(*) "
            "FROM versions WHERE model_id = ?",
            (model_id,),
        ).fetchone()
        return ModelRecord(
            id=model_id,
            name=row["name"],
            description=row["description"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            tags=tags,
            aliases=aliases,
            latest_version=latest,
            version_count=count,
        )

    def list_models(
        self,
        q: str | None = None,
        tags: Iterable[tuple[str, str]] = (),
        limit: int | None = None,
        page_token: str | None = None,
    ) -> tuple[list[ModelRecord], str | None]:
        limit = check_limit(limit)
        after = decode_token(page_token)
        if after is not None and not isinstance(after, str):
            raise BadRequest("The page_token is not one this server issued.")
        sql = "SELECT * FROM models m WHERE 1 = 1"
        args: list[Any] = []
        if q:
            sql += " AND (m.name LIKE ? ESCAPE '\\' OR m.description LIKE ? ESCAPE '\\')"
            args += [f"%{_like_escape(q)}%"] * 2
        for key, value in tags:
            sql += " AND EXISTS (SELECT 1 FROM model_tags t WHERE t.model_id = m.id"
            sql += " AND t.key = ? AND t.value = ?)"
            args += [key, value]
        if after is not None:
            sql += " AND m.name > ?"
            args.append(after)
        sql += " ORDER BY m.name LIMIT ?"
        args.append(limit + 1)
        with self.db.read() as conn:
            rows = conn.execute(sql, args).fetchall()
            records = [self._model_record(conn, row) for row in rows[:limit]]
        token = encode_token(records[-1].name) if len(rows) > limit else None
        return records, token

    def update_model(
        self, name: str, description: str | None = None, tags: dict[str, str] | None = None
    ) -> ModelRecord:
        check_name(name)
        with self.db.write() as conn:
            model_id = self.model_id(conn, name)
            if description is not None:
                conn.execute(
                    "UPDATE models SET description = ? WHERE id = ?", (description, model_id)
                )
            if tags is not None:
                self._replace_tags(conn, "model_tags", "model_id", model_id, tags)
            conn.execute("UPDATE models SET updated_at = ? WHERE id = ?", (time.time(), model_id))
            bump_revision(conn)
        return self.get_model(name)

    @staticmethod
    def _replace_tags(
        conn: sqlite3.Connection, table: str, column: str, owner: int | None, tags: dict[str, str]
    ) -> None:
        """Merge tags; a value of "" deletes that key (as MLflow's delete-tag)."""
        for key, value in tags.items():
            if value == "":
                conn.execute(f"DELETE FROM {table} WHERE {column} = ? AND key = ?", (owner, key))
            else:
                conn.execute(
                    f"INSERT INTO {table} ({column}, key, value) VALUES (?, ?, ?) "
                    f"ON CONFLICT ({column}, key) DO UPDATE SET value = excluded.value",
                    (owner, key, value),
                )

    def delete_model(self, name: str, *, force: bool = False) -> int:
        """Delete a model and all its versions; returns the bytes freed on disk."""
        check_name(name)
        with self.db.write() as conn:
            model_id = self.model_id(conn, name)
            aliases = [
                r[0]
                for r in conn.execute(
                    "SELECT alias FROM aliases WHERE model_id = ? ORDER BY alias", (model_id,)
                )
            ]
            if aliases and not force:
                raise Conflict(
                    f"Model {name!r} still has aliases ({', '.join(aliases)}) that clients may "
                    "serve. Delete them first, or repeat with ?force=true.",
                    code="has_aliases",
                )
            digests = {
                d
                for r in conn.execute(
                    "SELECT sha256, twin_sha256, served_sha256, load_cache_sha256 FROM versions "
                    "WHERE model_id = ?",
                    (model_id,),
                )
                for d in r
                if d is not None
            }  # model files, their ONNX twins, the copies they are served from, load caches
            conn.execute("DELETE FROM models WHERE id = ?", (model_id,))
            trashed = trash_unreferenced(conn, self.blobs, self.paths.tmp, digests)
            bump_revision(conn)
        return empty_trash(trashed)

    # -- versions -------------------------------------------------------------------------

    def add_version(
        self, model: str, temp: Path, sha256: str, size: int, new: NewVersion
    ) -> VersionRecord:
        """Register a verified temp file as the model's next version, creating the model if needed.

        The row is committed `pending` first, then the file is placed and the row marked `ready`
        in one transaction. The caller's temp file is consumed either way.
        """
        check_name(model)
        served = new.served
        try:
            with self.db.write() as conn:
                model_id = self.model_id(conn, model, missing_ok=True)
                if model_id is None:
                    model_id = self.insert_model(conn, model, "", {})
                number, version_id = self.insert_version(conn, model_id, "pending", sha256,
                                                          size, new)
                # No revision bump for a pending row: nothing serves it. One bump when it is
                # ready, so inference refreshes once per upload.
            try:
                with self.db.write() as conn:
                    self.blobs.adopt(temp, sha256)
                    if served is not None:
                        self.blobs.adopt(served.temp, served.sha256)
                    conn.execute(
                        "UPDATE versions SET status = 'ready', updated_at = ? WHERE id = ?",
                        (time.time(), version_id),
                    )
                    bump_revision(conn)
            except Exception as exc:
                self.set_status(
                    version_id, "failed", f"The file could not be stored: {type(exc).__name__}."
                )
                raise
        finally:
            temp.unlink(missing_ok=True)
            if served is not None:
                served.temp.unlink(missing_ok=True)
        return self.get_version(model, number)

    def insert_version(
        self, conn: sqlite3.Connection, model_id: int, status: str, sha256: str, size: int,
        new: NewVersion, origin: dict[str, Any] | None = None,
    ) -> tuple[int, int]:
        """Insert the model's next version with its tags; returns (version number, row id)."""
        now = time.time()
        number = int(conn.execute(
            "UPDATE models SET next_version = next_version + 1, updated_at = ? "
            "WHERE id = ? RETURNING next_version - 1",
            (now, model_id),
        ).fetchone()[0])
        cur = conn.execute(
            "INSERT INTO versions (model_id, version, status, format, format_detail, "
            "sha256, size, signature, metrics, params, description, source, "
            "imported_globals, environment, warnings, created_at, updated_at, dataset_id, origin, "
            "served_format, served_sha256, served_size, evaluation) "
            f"VALUES ({', '.join('?' * 23)})",
            (
                model_id,
                number,
                status,
                new.format,
                new.format_detail,
                sha256,
                size,
                json.dumps(new.signature) if new.signature is not None else None,
                json.dumps(new.metrics),
                json.dumps(new.params),
                new.description,
                new.source,
                json.dumps(list(new.imported_globals)),
                json.dumps(new.environment),
                json.dumps(list(new.warnings)),
                now,
                now,
                new.dataset_id,
                json.dumps(origin) if origin is not None else None,
                new.served.format if new.served else None,
                new.served.sha256 if new.served else None,
                new.served.size if new.served else None,
                json.dumps(new.evaluation),
            ),
        )
        version_id = int(cur.lastrowid or 0)
        conn.executemany(
            "INSERT INTO version_tags (version_id, key, value) VALUES (?, ?, ?)",
            [(version_id, k, v) for k, v in new.tags.items()],
        )
        return number, version_id

    def get_version(self, model: str, ref: str | int) -> VersionRecord:
        check_name(model)
        with self.db.read() as conn:
            row = self._resolve_row(conn, model, ref)
            return self.version_record(conn, row)

    def resolve(self, model: str, ref: str | int | None = None) -> VersionRecord:
        """What inference serves: `ref` if given, else the `production` alias, else `latest`."""
        if ref is None:
            check_name(model)
            with self.db.read() as conn:
                model_id = self.model_id(conn, model)
                has_production = conn.execute(
                    "SELECT 1 FROM aliases WHERE model_id = ? AND alias = 'production'",
                    (model_id,),
                ).fetchone()
            ref = "production" if has_production else LATEST
        return self.get_version(model, ref)

    def _resolve_row(self, conn: sqlite3.Connection, model: str, ref: str | int) -> sqlite3.Row:
        parsed = parse_ref(ref) if isinstance(ref, str) else ref
        model_id = self.model_id(conn, model)
        if isinstance(parsed, int):
            row = conn.execute(
                VERSION_SELECT + "WHERE v.model_id = ? AND v.version = ?", (model_id, parsed)
            ).fetchone()
            what = f"version {parsed}"
        elif parsed == LATEST:
            row = conn.execute(
                VERSION_SELECT + "WHERE v.model_id = ? AND v.status = 'ready' "
                "ORDER BY v.version DESC LIMIT 1",
                (model_id,),
            ).fetchone()
            what = "ready version"
        else:
            row = conn.execute(
                VERSION_SELECT + "JOIN aliases a ON a.version_id = v.id "
                "WHERE a.model_id = ? AND a.alias = ?",
                (model_id, parsed),
            ).fetchone()
            what = f"alias {parsed!r}"
        if row is None:
            raise NotFound(f"Model {model!r} has no {what}.")
        found: sqlite3.Row = row
        return found

    def version_record(self, conn: sqlite3.Connection, row: sqlite3.Row) -> VersionRecord:
        """A version row with its tags and aliases (for the store's parts: twins, imports)."""
        tags = dict(
            conn.execute("SELECT key, value FROM version_tags WHERE version_id = ?", (row["id"],))
        )
        aliases = [
            r[0]
            for r in conn.execute(
                "SELECT alias FROM aliases WHERE version_id = ? ORDER BY alias", (row["id"],)
            )
        ]
        return VersionRecord.from_row(row, tags, aliases)

    def list_versions(
        self, model: str, limit: int | None = None, page_token: str | None = None
    ) -> tuple[list[VersionRecord], str | None]:
        check_name(model)
        limit = check_limit(limit)
        before = decode_token(page_token)
        if before is not None and not isinstance(before, int):
            raise BadRequest("The page_token is not one this server issued.")
        with self.db.read() as conn:
            model_id = self.model_id(conn, model)
            rows = conn.execute(
                VERSION_SELECT + "WHERE v.model_id = ? AND v.version < ? "
                "ORDER BY v.version DESC LIMIT ?",
                (model_id, before if before is not None else 2**62, limit + 1),
            ).fetchall()
            records = [self.version_record(conn, row) for row in rows[:limit]]
        token = encode_token(records[-1].version) if len(rows) > limit else None
        return records, token

    def update_version(
        self,
        model: str,
        ref: str | int,
        description: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> VersionRecord:
        check_name(model)
        with self.db.write() as conn:
            row = self._resolve_row(conn, model, ref)
            if description is not None:
                conn.execute(
                    "UPDATE versions SET description = ? WHERE id = ?", (description, row["id"])
                )
            if tags is not None:
                self._replace_tags(conn, "version_tags", "version_id", row["id"], tags)
            conn.execute(
                "UPDATE versions SET updated_at = ? WHERE id = ?", (time.time(), row["id"])
            )
            bump_revision(conn)
        return self.get_version(model, row["version"])

    def delete_version(self, model: str, ref: str | int, *, force: bool = False) -> int:
        """Delete one version; returns the bytes freed. 409 while an alias points at it."""
        check_name(model)
        with self.db.write() as conn:
            row = self._resolve_row(conn, model, ref)
            aliases = [
                r[0]
                for r in conn.execute(
                    "SELECT alias FROM aliases WHERE version_id = ? ORDER BY alias", (row["id"],)
                )
            ]
            if aliases and not force:
                raise Conflict(
                    f"Version {row['version']} of {model!r} is the target of alias(es) "
                    f"{', '.join(aliases)}. Move them first, or repeat with ?force=true.",
                    code="has_aliases",
                )
            conn.execute("DELETE FROM versions WHERE id = ?", (row["id"],))
            trashed = trash_unreferenced(conn, self.blobs, self.paths.tmp, version_files(row))
            bump_revision(conn)
        return empty_trash(trashed)

    def unconverted_pickles(self) -> list[VersionRecord]:
        """Ready pickle versions (plain or inside an MLflow zip) an earlier release stored
        without the skops copy servers load."""
        with self.db.read() as conn:
            rows = conn.execute(
                VERSION_SELECT + " WHERE v.status = 'ready' AND v.served_sha256 IS NULL AND "
                "(v.format = 'pickle' OR (v.format = 'mlflow' AND v.imported_globals != '[]')) "
                "ORDER BY v.id"
            ).fetchall()
        return [VersionRecord.from_row(row, {}, []) for row in rows]

    def set_served(self, version_id: int, served: ServedFile) -> bool:
        """Place a version's served copy and record it; False (copy discarded) if the version is
        gone. The temp file is consumed either way."""
        try:
            with self.db.write() as conn:
                if conn.execute("SELECT 1 FROM versions WHERE id = ?", (version_id,)).fetchone() \
                        is None:
                    return False
                self.blobs.adopt(served.temp, served.sha256)
                conn.execute(
                    "UPDATE versions SET served_format = ?, served_sha256 = ?, served_size = ?, "
                    "updated_at = ? WHERE id = ?",
                    (served.format, served.sha256, served.size, time.time(), version_id),
                )
                bump_revision(conn)
            return True
        finally:
            served.temp.unlink(missing_ok=True)

    def set_evaluation(self, model: str, version: int, evaluation: dict[str, Any]) -> None:
        """Store a version's evaluation report (an "evaluate" job's result). No revision bump:
        what is served does not change."""
        check_name(model)
        with self.db.write() as conn:
            row = self._resolve_row(conn, model, version)
            conn.execute("UPDATE versions SET evaluation = ?, updated_at = ? WHERE id = ?",
                         (json.dumps(evaluation), time.time(), row["id"]))

    def set_status(self, version_id: int, status: str, message: str = "") -> None:
        with self.db.write() as conn:
            conn.execute(
                "UPDATE versions SET status = ?, status_message = ?, updated_at = ? WHERE id = ?",
                (status, message, time.time(), version_id),
            )
            bump_revision(conn)

    # -- aliases --------------------------------------------------------------------------

    def set_alias(self, model: str, alias: str, version: int) -> VersionRecord:
        check_name(model)
        check_alias(alias)
        with self.db.write() as conn:
            row = self._resolve_row(conn, model, version)
            if row["status"] != SERVABLE:
                raise Conflict(
                    f"Version {version} of {model!r} is {row['status']}; only ready versions can "
                    "take an alias.",
                    code="not_ready",
                )
            conn.execute(
                "INSERT INTO aliases (model_id, alias, version_id, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (model_id, alias) DO UPDATE SET version_id = excluded.version_id, "
                "updated_at = excluded.updated_at",
                (row["model_id"], alias, row["id"], time.time()),
            )
            bump_revision(conn)
        return self.get_version(model, version)

    def delete_alias(self, model: str, alias: str) -> None:
        check_name(model)
        check_alias(alias)
        with self.db.write() as conn:
            model_id = self.model_id(conn, model)
            cur = conn.execute(
                "DELETE FROM aliases WHERE model_id = ? AND alias = ?", (model_id, alias)
            )
            if cur.rowcount == 0:
                raise NotFound(f"Model {model!r} has no alias {alias!r}.")
            bump_revision(conn)

    # -- files ----------------------------------------------------------------------------

    def blob_path(self, record: VersionRecord) -> Path:
        """The version's own file (what was uploaded; what the artifact route sends)."""
        if record.sha256 is None:
            raise NotFound(f"Version {record.version} of {record.model!r} has no file.")
        return self.blobs.path(record.sha256)

    def served_path(self, record: VersionRecord) -> tuple[Path, str, str]:
        """(path, sha256, format) of the file servers load: a pickle's skops copy, else the
        version's own file. Servers never open a pickle (docs/security.md)."""
        digest, fmt = record.served_file
        if digest is None:
            raise NotFound(f"Version {record.version} of {record.model!r} has no file.")
        return self.blobs.path(digest), digest, fmt


class _ReadOnlyBlobs(BlobStore):
    """Blob paths for readers (the inference server) without creating any directory."""

    def __init__(self, paths: Paths) -> None:  # noqa: D107 - no mkdir, unlike BlobStore
        self.root = paths.blobs
        self.tmp = paths.tmp
