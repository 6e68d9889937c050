"""Retiring blobs nothing references any more, safely against a crash.

A retired file is renamed into `tmp/` inside the deleting transaction (so reference counts seen
there stay true) and unlinked after the commit; startup reconciliation (reconcile.py) puts a
trashed file back if that transaction did not commit.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

from app.store.blobs import BlobStore
from app.store.references import is_referenced

TRASH_PREFIX = "trash-"


def trash_unreferenced(conn: sqlite3.Connection, blobs: BlobStore, tmp: Path,
                       digests: Iterable[str]) -> list[Path]:
    """Move the files of `digests` that no row references into tmp/; call inside the write
    transaction that dropped the references."""
    trashed = []
    for sha in digests:
        if is_referenced(conn, sha):
            continue
        target = tmp / f"{TRASH_PREFIX}{sha}"
        try:
            blobs.path(sha).replace(target)
        except FileNotFoundError:
            continue
        trashed.append(target)
    return trashed


def empty_trash(trashed: list[Path]) -> int:
    """Unlink trashed files after the commit; returns the bytes freed."""
    freed = 0
    for path in trashed:
        try:
            freed += path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            pass
    return freed
