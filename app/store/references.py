"""Which blob digests the database still needs: model files, the forms they are served from,
their ONNX twins, their load caches and datasets.

One place, so deleting and reconciling never disagree about what a blob is for.
"""

from __future__ import annotations

import sqlite3

_REFERENCES = (
    "SELECT sha256 FROM versions WHERE sha256 = ?",
    "SELECT twin_sha256 FROM versions WHERE twin_sha256 = ?",
    "SELECT served_sha256 FROM versions WHERE served_sha256 = ?",
    "SELECT load_cache_sha256 FROM versions WHERE load_cache_sha256 = ?",
    "SELECT id FROM datasets WHERE id = ?",
)


def is_referenced(conn: sqlite3.Connection, sha: str) -> bool:
    return any(conn.execute(q + " LIMIT 1", (sha,)).fetchone() for q in _REFERENCES)


def referenced_digests(conn: sqlite3.Connection, *, servable_only: bool) -> set[str]:
    """Digests rows name: twins and datasets always, model files of every version or, with
    `servable_only`, of ready and corrupt versions only (a failed upload's file may go)."""
    status = " AND status IN ('ready', 'corrupt')" if servable_only else ""
    rows = conn.execute(
        f"SELECT sha256 FROM versions WHERE sha256 IS NOT NULL{status} "
        "UNION SELECT twin_sha256 FROM versions WHERE twin_sha256 IS NOT NULL "
        "UNION SELECT served_sha256 FROM versions WHERE served_sha256 IS NOT NULL "
        "UNION SELECT load_cache_sha256 FROM versions WHERE load_cache_sha256 IS NOT NULL "
        "UNION SELECT id FROM datasets"
    )
    return {r[0] for r in rows}


_PUBLISHED = (
    "SELECT 1 FROM versions WHERE status = 'ready' AND "
    "(sha256 = ?1 OR served_sha256 = ?1 OR (twin_sha256 = ?1 AND twin_status = 'verified')) "
    "LIMIT 1"
)


def is_published(conn: sqlite3.Connection, sha: str) -> bool:
    """Whether a ready version names this file (its own, its served copy or its verified twin):
    what GET /blobs/{sha256} may hand out. Datasets are never published by digest."""
    return conn.execute(_PUBLISHED, (sha,)).fetchone() is not None
