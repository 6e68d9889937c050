"""ONNX twins of versions: their state, their file in the blob store, their verification report.

A twin never changes its version: the model file, status and signature stay as they are, and a
twin that is missing, failed or switched off only means the version is served by scikit-learn.
Recording a twin follows the upload rules of catalog.py: the file is written to a temp file and
fsynced outside the lock, then placed and the row updated in one write transaction, so a crash
leaves either the old state or the new, and a blob no row names is an orphan that reconciliation
removes. A twin replaced by another, or whose version was deleted meanwhile, is retired in the
same transaction. Every change bumps the revision, which is how inference learns of it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.errors import NotFound
from app.store.catalog import VERSION_SELECT, Store
from app.store.db import bump_revision
from app.store.trash import empty_trash, trash_unreferenced

STATUSES = ("none", "queued", "verified", "failed", "unsupported")
NEEDS_NO_TWIN = frozenset({"onnx"})  # already served by onnxruntime


@dataclass(frozen=True)
class TrainingData:
    """Where a trained version's rows came from: a dataset file and the column it predicted."""

    path: Path
    dataset_id: str
    target: str | None


def version_by_id(store: Store, version_id: int) -> Any:
    """The version record of a row id (jobs carry ids: names can be deleted and reused)."""
    with store.db.read() as conn:
        row = conn.execute(VERSION_SELECT + "WHERE v.id = ?", (version_id,)).fetchone()
        if row is None:
            raise NotFound(f"No version with id {version_id}.")
        return store.version_record(conn, row)


def twin_state(store: Store, version_id: int) -> tuple[str, str | None, dict[str, Any]]:
    """(status, twin sha256, report) of a version."""
    row = store.db.connection().execute(
        "SELECT twin_status, twin_sha256, twin_report FROM versions WHERE id = ?", (version_id,)
    ).fetchone()
    if row is None:
        raise NotFound(f"No version with id {version_id}.")
    return row[0], row[1], json.loads(row[2] or "{}")


def mark_queued(store: Store, version_id: int) -> bool:
    """Note that a compile job is on its way; False if the version is gone, not ready, or
    needs no twin."""
    formats = sorted(NEEDS_NO_TWIN)
    with store.db.write() as conn:
        cur = conn.execute(
            "UPDATE versions SET twin_status = 'queued', updated_at = ? WHERE id = ? "
            f"AND status = 'ready' AND format NOT IN ({', '.join('?' * len(formats))})",
            (time.time(), version_id, *formats),
        )
    # No revision bump: a queued build changes nothing a server serves (the revision means
    # "what is served may have changed"; record_twin bumps when the twin exists).
    return bool(cur.rowcount)


def record_twin(store: Store, version_id: int, status: str, report: dict[str, Any],
                onnx_bytes: bytes | None = None) -> bool:
    """Store the outcome of a build. Returns False if the version was deleted meanwhile.

    A verified outcome carries the graph; any other clears the version's twin, so a rebuild that
    fails never leaves an older twin serving beside a report that says it failed.
    """
    if status not in STATUSES:
        raise ValueError(f"unknown twin status {status!r}")
    if (status == "verified") != (onnx_bytes is not None):
        raise ValueError("a verified twin needs its graph, and only a verified one has one")
    temp: Path | None = None
    sha: str | None = None
    if onnx_bytes is not None:
        temp, sha, _ = store.blobs.receive(iter([onnx_bytes]))
    try:
        with store.db.write() as conn:
            row = conn.execute("SELECT twin_sha256 FROM versions WHERE id = ?",
                               (version_id,)).fetchone()
            if row is None:
                return False
            if temp is not None and sha is not None:
                store.blobs.adopt(temp, sha)
            conn.execute(
                "UPDATE versions SET twin_status = ?, twin_sha256 = ?, twin_report = ?, "
                "updated_at = ? WHERE id = ?",
                (status, sha, json.dumps(report), time.time(), version_id),
            )
            retired = {row[0]} - {None, sha}
            trashed = trash_unreferenced(conn, store.blobs, store.paths.tmp, retired)
            bump_revision(conn)
        empty_trash(trashed)
        return True
    finally:
        if temp is not None:
            temp.unlink(missing_ok=True)


def training_data(store: Store, version_id: int) -> TrainingData | None:
    """The dataset a training job fitted this version on, if the registry still has it."""
    conn = store.db.connection()
    row = conn.execute(
        "SELECT v.dataset_id, v.params, m.name, v.version FROM versions v "
        "JOIN models m ON m.id = v.model_id WHERE v.id = ?", (version_id,)
    ).fetchone()
    if row is None or not row["dataset_id"]:
        return None
    dataset_id = row["dataset_id"]
    if not store.blobs.exists(dataset_id):
        return None
    return TrainingData(store.blobs.path(dataset_id), dataset_id,
                        _target(conn, row, json.loads(row["params"] or "{}")))


def _target(conn: sqlite3.Connection, row: sqlite3.Row, params: dict[str, Any]) -> str | None:
    """The predicted column: from the version's params, else from the job that trained it."""
    if isinstance(params.get("target"), str):
        return str(params["target"])
    job = conn.execute(
        "SELECT spec FROM jobs WHERE kind = 'train' AND model = ? AND version = ? "
        "ORDER BY created_at DESC LIMIT 1", (row["name"], row["version"])
    ).fetchone()
    if job is None:
        return None
    try:
        target = json.loads(job[0]).get("target")
    except (ValueError, AttributeError):
        return None
    return target if isinstance(target, str) else None
