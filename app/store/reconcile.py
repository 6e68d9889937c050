"""Startup reconciliation: bring the data dir back to a consistent state after a crash.

Runs in the registry (the only writer) before it accepts requests. What a crash can leave:
- temp files of unfinished uploads -> removed;
- files retired by a delete whose transaction did not commit -> put back, else removed;
- `pending` rows -> `ready` if their file is in place and matches, else `failed`;
- `ready` rows whose file has vanished -> `corrupt` (never served);
- files no row references (placed, then the process died before the row) -> removed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from app.atomic import fsync_dir
from app.store.blobs import TEMP_PREFIX, durable_folder, file_sha256
from app.store.catalog import Store
from app.store.db import bump_revision
from app.store.references import referenced_digests
from app.store.trash import TRASH_PREFIX

log = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    temp_removed: int = 0
    restored: int = 0
    pending_ready: int = 0
    pending_failed: int = 0
    missing_corrupt: int = 0
    orphans_removed: int = 0

    def changed(self) -> bool:
        return any(vars(self).values())


def reconcile(store: Store) -> ReconcileReport:
    report = ReconcileReport()
    blobs = store.blobs
    with store.db.write() as conn:
        referenced = referenced_digests(conn, servable_only=False)
        for entry in list(blobs.tmp.iterdir()):
            if entry.name.startswith(TRASH_PREFIX):
                sha = entry.name.removeprefix(TRASH_PREFIX)
                if sha in referenced and not blobs.exists(sha):
                    durable_folder(blobs.path(sha).parent)
                    entry.replace(blobs.path(sha))
                    fsync_dir(blobs.path(sha).parent)
                    report.restored += 1
                    continue
            if entry.is_file():
                entry.unlink(missing_ok=True)
                report.temp_removed += entry.name.startswith(TEMP_PREFIX)

        now = time.time()
        for row in conn.execute(
            "SELECT id, sha256 FROM versions WHERE status = 'pending'"
        ).fetchall():
            sha = row["sha256"]
            if sha and blobs.exists(sha) and file_sha256(blobs.path(sha)) == sha:
                status, message = "ready", ""
                report.pending_ready += 1
            else:
                status = "failed"
                message = "The upload was interrupted before its file was stored."
                report.pending_failed += 1
            conn.execute(
                "UPDATE versions SET status = ?, status_message = ?, updated_at = ? WHERE id = ?",
                (status, message, now, row["id"]),
            )

        for row in conn.execute(
            "SELECT id, sha256 FROM versions WHERE status = 'ready'"
        ).fetchall():
            if not blobs.exists(row["sha256"]):
                conn.execute(
                    "UPDATE versions SET status = 'corrupt', status_message = ?, updated_at = ? "
                    "WHERE id = ?",
                    ("Its file is missing from the data dir.", now, row["id"]),
                )
                report.missing_corrupt += 1

        live = referenced_digests(conn, servable_only=True)
        for sha in list(blobs.all_digests()):
            if sha not in live:
                blobs.remove(sha)
                report.orphans_removed += 1
        if report.changed():
            bump_revision(conn)
    if report.changed():
        log.info("reconciled data dir: %s", report)
    return report
