"""Commit many versions, their files and aliases at once: all or nothing (bundle imports, mirrors).

The importer (app/fleet/importer.py) hashes every file into the blob store's temp dir and inspects
it first; this module only places what it was handed, in ONE write transaction:
- a version whose model already holds a ready version of the same file is `present`, not added;
- new versions are inserted `ready` in the same transaction that places their files (and the
  ONNX twins that travelled with them), so `ready` still implies a durable file;
- aliases move to the local version holding the named file;
- the revision is bumped once, and only when something changed (a second import changes nothing).
A kill -9 before the commit leaves no row; files already renamed into place are then referenced
by nothing, and startup reconciliation (reconcile.py) removes them with the temp files.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.errors import Conflict
from app.store.catalog import NewVersion, Store
from app.store.db import bump_revision
from app.store.names import check_alias, check_name


@dataclass(frozen=True)
class IncomingTwin:
    """A verified ONNX twin that travelled with its version (only from a trusted publisher)."""

    sha256: str
    report: dict[str, Any]


@dataclass(frozen=True)
class IncomingVersion:
    model: str
    sha256: str
    size: int
    new: NewVersion
    origin: dict[str, Any]
    twin: IncomingTwin | None = None
    key: str = ""  # the caller's name for it in the report, e.g. "churn@3" of the bundle


@dataclass(frozen=True)
class IncomingModel:
    """A model's description and tags, applied only when the import creates the model."""

    name: str
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class IncomingAlias:
    model: str
    alias: str
    sha256: str  # the alias points at the model's ready version of this file


@dataclass
class ImportBatch:
    models: list[IncomingModel]
    versions: list[IncomingVersion]
    aliases: list[IncomingAlias]
    files: dict[str, Path]  # sha256 -> fsynced temp file, for digests the store did not hold
    dry_run: bool = False  # decide everything, then roll back: a preview that writes nothing


@dataclass
class ImportOutcome:
    added: list[tuple[IncomingVersion, int]] = field(default_factory=list)  # (it, local number)
    present: list[tuple[IncomingVersion, int]] = field(default_factory=list)
    aliases: list[dict[str, Any]] = field(default_factory=list)  # {model, alias, from, to}
    created_models: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.aliases or self.created_models)


def present_version(store: Store, model: str, sha256: str) -> int | None:
    """The number of the model's newest ready version of this file, if it has one."""
    with store.db.read() as conn:
        return _present(conn, model, sha256)


def _present(conn: sqlite3.Connection, model: str, sha256: str) -> int | None:
    row = conn.execute(
        "SELECT MAX(v.version) FROM versions v JOIN models m ON m.id = v.model_id "
        "WHERE m.name = ? AND v.sha256 = ? AND v.status = 'ready'",
        (model, sha256),
    ).fetchone()
    return int(row[0]) if row is not None and row[0] is not None else None


def file_by_origin(store: Store, model: str, origin: dict[str, Any]) -> tuple[str, int] | None:
    """(sha256, size) of the model's newest ready version whose origin has all of `origin`'s
    fields: an upstream that publishes no digests (MLflow) learns a version it brought before
    without fetching it again."""
    if not origin:
        return None
    where = " AND ".join("json_extract(v.origin, ?) IS ?" for _ in origin)
    args: list[Any] = [model]
    for key, value in origin.items():
        args += [f"$.{key}", value]
    with store.db.read() as conn:
        row = conn.execute(
            "SELECT v.sha256, v.size FROM versions v JOIN models m ON m.id = v.model_id "
            f"WHERE m.name = ? AND v.status = 'ready' AND {where} ORDER BY v.version DESC "
            "LIMIT 1", args,
        ).fetchone()
    return (str(row[0]), int(row[1])) if row is not None else None


class _Preview(Exception):
    """Raised at the end of a dry run to roll its transaction back."""


def commit_import(store: Store, batch: ImportBatch) -> ImportOutcome:
    """Place the batch; the temp files in `batch.files` are consumed either way."""
    outcome = ImportOutcome()
    placed: set[str] = set()
    try:
        with store.db.write() as conn:
            model_ids = {m.name: _model_id(store, conn, m, outcome) for m in batch.models}
            for incoming in batch.versions:
                number = _present(conn, incoming.model, incoming.sha256)
                if number is not None:
                    outcome.present.append((incoming, number))
                    continue
                _place(store, batch, placed, incoming.sha256)
                served = incoming.new.served  # a pickle's skops copy, made by the sandbox
                if served is not None and not batch.dry_run:
                    store.blobs.adopt(served.temp, served.sha256)
                number, version_id = store.insert_version(
                    conn, model_ids[incoming.model], "ready", incoming.sha256, incoming.size,
                    incoming.new, incoming.origin,
                )
                if incoming.twin is not None:
                    _place(store, batch, placed, incoming.twin.sha256)
                    conn.execute(
                        "UPDATE versions SET twin_status = 'verified', twin_sha256 = ?, "
                        "twin_report = ? WHERE id = ?",
                        (incoming.twin.sha256, json.dumps(incoming.twin.report), version_id),
                    )
                outcome.added.append((incoming, number))
            for alias in batch.aliases:
                moved = _move_alias(conn, alias)
                if moved is not None:
                    outcome.aliases.append(moved)
            if batch.dry_run:
                raise _Preview
            if outcome.changed:
                bump_revision(conn)
    except _Preview:
        pass
    finally:
        for temp in batch.files.values():
            temp.unlink(missing_ok=True)
        for incoming in batch.versions:
            if incoming.new.served is not None:
                incoming.new.served.temp.unlink(missing_ok=True)
    return outcome


def _model_id(
    store: Store, conn: sqlite3.Connection, model: IncomingModel, outcome: ImportOutcome
) -> int:
    check_name(model.name)
    model_id = store.model_id(conn, model.name, missing_ok=True)
    if model_id is None:
        model_id = store.insert_model(conn, model.name, model.description, model.tags)
        outcome.created_models.append(model.name)
    return model_id


def _place(store: Store, batch: ImportBatch, placed: set[str], sha256: str) -> None:
    """Make the blob of `sha256` durable in the store, from its temp file or as already held
    (in a dry run, only check that it could be).

    Runs under the write lock, so a file seen here cannot be retired before the commit."""
    if sha256 in placed:
        return
    temp = batch.files.get(sha256)
    if temp is not None:
        if not batch.dry_run:
            store.blobs.adopt(temp, sha256)
    elif not store.blobs.exists(sha256):
        # The importer skipped writing a file the store held, and a delete retired it since.
        raise Conflict(
            f"The file {sha256[:12]}... was removed from this registry while the import ran. "
            "Nothing was imported; import the bundle again.",
            code="import_conflict",
        )
    placed.add(sha256)


def _move_alias(conn: sqlite3.Connection, alias: IncomingAlias) -> dict[str, Any] | None:
    check_alias(alias.alias)
    target = conn.execute(
        "SELECT v.id, v.version, v.model_id FROM versions v JOIN models m ON m.id = v.model_id "
        "WHERE m.name = ? AND v.sha256 = ? AND v.status = 'ready' "
        "ORDER BY v.version DESC LIMIT 1",
        (alias.model, alias.sha256),
    ).fetchone()
    if target is None:  # the importer only names files it imports or found present
        raise Conflict(f"Model {alias.model!r} has no ready version for alias {alias.alias!r}.",
                       code="import_conflict")
    current = conn.execute(
        "SELECT v.id, v.version FROM aliases a JOIN versions v ON v.id = a.version_id "
        "WHERE a.model_id = ? AND a.alias = ?",
        (target["model_id"], alias.alias),
    ).fetchone()
    if current is not None and current["id"] == target["id"]:
        return None
    conn.execute(
        "INSERT INTO aliases (model_id, alias, version_id, updated_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (model_id, alias) DO UPDATE SET version_id = excluded.version_id, "
        "updated_at = excluded.updated_at",
        (target["model_id"], alias.alias, target["id"], time.time()),
    )
    return {"model": alias.model, "alias": alias.alias,
            "from": current["version"] if current is not None else None,
            "to": target["version"]}
