"""Retention: which old versions and datasets go, so a box left alone for months does not fill up.

A model keeps its newest `keep_versions` versions (the setting, or the model's tag
`keep_versions`, a count or `all`). Older ones go, except
- a version an alias names,
- a version a queued or running job uses (a twin build names it by id),
- the version served when a client names only the model (its `production` alias, else the newest
  ready version: `Store.resolve`),
- a `pending` version (an upload still in progress).
A dataset older than `keep_datasets_days` goes unless a queued or running job reads it.

The same transaction that deletes the rows retires their files through the store's one reference
rule (trash.py, references.py): a file goes only when no version, twin or dataset names it any
more. A dry run takes the same steps, measures, and rolls them back, so its report is what a
real run would free.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.store.blobs import BlobStore
from app.store.catalog import Store, version_files
from app.store.db import bump_revision
from app.store.references import is_referenced
from app.store.trash import empty_trash, trash_unreferenced

log = logging.getLogger(__name__)
KEEP_TAG = "keep_versions"  # model tag overriding the setting: a count, or "all"
DAY = 86_400.0


class DryRun(Exception):
    """Raised inside the write transaction to roll a dry run back."""


@dataclass(frozen=True)
class Policy:
    keep_versions: int | None = None  # None: keep every version
    keep_datasets_days: float | None = None  # None: keep datasets forever

    @property
    def removes_anything(self) -> bool:
        return self.keep_versions is not None or self.keep_datasets_days is not None


@dataclass
class GcReport:
    dry_run: bool = False
    versions: list[str] = field(default_factory=list)  # "model version N"
    datasets: list[str] = field(default_factory=list)  # "<id prefix> (name)"
    bytes_freed: int = 0
    notes: list[str] = field(default_factory=list)  # e.g. a keep_versions tag that is not a count

    def to_dict(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "versions": self.versions, "datasets": self.datasets,
                "bytes_freed": self.bytes_freed, "notes": self.notes}

    def render(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        lines = [f"{verb}: {item}" for item in self.versions + self.datasets]
        lines += [f"note: {note}" for note in self.notes]
        freed = "would free" if self.dry_run else "freed"
        lines.append(f"{len(self.versions)} version(s) and {len(self.datasets)} dataset(s) "
                     f"{verb}; {freed} {self.bytes_freed} bytes")
        return "\n".join(lines)


def model_keep(setting: int | None, tag: str | None) -> tuple[int | None, str | None]:
    """The count a model keeps: its tag wins over the setting. Returns (count, note) where note
    says why a tag was not used; a tag that is not a count keeps everything (the safe reading)."""
    if tag is None:
        return setting, None
    text = tag.strip().lower()
    if text == "all":
        return None, None
    if text.isdigit() and int(text) >= 1:
        return int(text), None
    return None, (f"tag {KEEP_TAG}={tag[:40]!r} is not a count of at least 1 or 'all': "
                  "every version of that model is kept")


def _protected(conn: sqlite3.Connection, model_id: int) -> set[int]:
    """Version ids of the model that stay whatever their age."""
    keep = {r[0] for r in conn.execute(
        "SELECT version_id FROM aliases WHERE model_id = ?", (model_id,))}
    keep |= {r[0] for r in conn.execute(
        "SELECT id FROM versions WHERE model_id = ? AND status = 'pending'", (model_id,))}
    keep |= {int(r[0]) for r in conn.execute(
        # A compile job (twin, load cache) is derived work that records "the version was
        # deleted" and ends; only jobs that read the version for a user keep it.
        "SELECT json_extract(spec, '$.version_id') FROM jobs "
        "WHERE status IN ('queued', 'running') AND kind != 'compile' "
        "AND json_extract(spec, '$.version_id') IS NOT NULL")}
    served = conn.execute(
        "SELECT id FROM versions WHERE model_id = ? AND status = 'ready' "
        "ORDER BY version DESC LIMIT 1", (model_id,)).fetchone()
    if served is not None:
        keep.add(served[0])
    return keep


def _expired_versions(conn: sqlite3.Connection, model_id: int, keep: int) -> list[sqlite3.Row]:
    protected = _protected(conn, model_id)
    rows = conn.execute(
        "SELECT v.*, m.name AS model_name FROM versions v JOIN models m ON m.id = v.model_id "
        "WHERE v.model_id = ? ORDER BY v.version DESC", (model_id,)).fetchall()
    return [row for row in rows[keep:] if row["id"] not in protected]


def _expired_datasets(conn: sqlite3.Connection, days: float, now: float) -> list[sqlite3.Row]:
    return conn.execute(
        "SELECT id, name FROM datasets d WHERE created_at < ? AND NOT EXISTS ("
        "SELECT 1 FROM jobs j WHERE j.status IN ('queued', 'running') "
        "AND json_extract(j.spec, '$.dataset') = d.id) ORDER BY created_at, id",
        (now - days * DAY,)).fetchall()


def _size(blobs: BlobStore, sha: str) -> int:
    try:
        return blobs.path(sha).stat().st_size
    except FileNotFoundError:
        return 0


def collect(store: Store, policy: Policy, *, model: str | None = None,
            dry_run: bool = False, now: float | None = None) -> GcReport:
    """Remove (or, with `dry_run`, list) what the policy lets go; `model` limits versions to one
    model (what runs after each new version). One write transaction, one revision bump."""
    report = GcReport(dry_run=dry_run)
    if not policy.removes_anything and not _has_keep_tags(store):
        return report
    now = time.time() if now is None else now
    trashed: list[Path] = []
    try:
        with store.db.write() as conn:
            digests: set[str] = set()
            for model_id, name, tag in _models(conn, model):
                keep, note = model_keep(policy.keep_versions, tag)
                if note:
                    report.notes.append(f"{name}: {note}")
                if keep is None:
                    continue
                for row in _expired_versions(conn, model_id, keep):
                    conn.execute("DELETE FROM versions WHERE id = ?", (row["id"],))
                    digests |= version_files(row)
                    report.versions.append(f"{name} version {row['version']}")
            if policy.keep_datasets_days is not None:
                for row in _expired_datasets(conn, policy.keep_datasets_days, now):
                    conn.execute("DELETE FROM datasets WHERE id = ?", (row["id"],))
                    digests.add(row["id"])
                    report.datasets.append(f"{row['id'][:12]} ({row['name'] or 'no name'})")
            # A dry run only measures: moving files aside and back could hide one from a reader.
            unreferenced = sorted(d for d in digests if not is_referenced(conn, d))
            report.bytes_freed = sum(_size(store.blobs, d) for d in unreferenced)
            if dry_run:
                raise DryRun
            trashed = trash_unreferenced(conn, store.blobs, store.paths.tmp, unreferenced)
            if report.versions or report.datasets:
                bump_revision(conn)
    except DryRun:
        return report
    empty_trash(trashed)
    if report.versions or report.datasets:
        log.info("retention removed %s; freed %d bytes",
                 ", ".join(report.versions + report.datasets), report.bytes_freed)
    return report


def _has_keep_tags(store: Store) -> bool:
    row = store.db.connection().execute(
        "SELECT 1 FROM model_tags WHERE key = ? LIMIT 1", (KEEP_TAG,)).fetchone()
    return row is not None


def _models(conn: sqlite3.Connection, model: str | None) -> list[tuple[int, str, str | None]]:
    sql = ("SELECT m.id, m.name, t.value FROM models m LEFT JOIN model_tags t "
           "ON t.model_id = m.id AND t.key = ?")
    args: list[Any] = [KEEP_TAG]
    if model is not None:
        sql += " WHERE m.name = ?"
        args.append(model)
    return [(r[0], r[1], r[2]) for r in conn.execute(sql + " ORDER BY m.name", args)]


def policy_of(settings: Any) -> Policy:
    """The policy the settings (app/config.py Settings) ask for."""
    return Policy(settings.keep_versions, settings.keep_datasets_days)
