"""Which blob digests the database still needs: model files, their ONNX twins and datasets.

One place, so deleting and reconciling never disagree about what a blob is for.
"""

from __future__ import annotations

import sqlite3

_REFERENCES = (
    "SELECT sha256 FROM versions WHERE sha256 = ?",
    "SELECT twin_sha256 FROM versions WHERE twin_sha256 = ?",
    "SELECT id FROM datasets WHERE id = ?",
)


def is_referenced(conn: sqlite3.Connection, sha: str) -> bool:
    return any(conn.execute(q + " LIMIT 1", (sha,)).fetchone() for q in _REFERENCES)


def live_digests(conn: sqlite3.Connection) -> set[str]:
    """Digests a blob must keep: files of ready or corrupt versions, twins, datasets."""
    rows = conn.execute(
        "SELECT sha256 FROM versions WHERE sha256 IS NOT NULL AND status IN ('ready', 'corrupt') "
        "UNION SELECT twin_sha256 FROM versions WHERE twin_sha256 IS NOT NULL "
        "UNION SELECT id FROM datasets"
    )
    return {r[0] for r in rows}


def all_digests(conn: sqlite3.Connection) -> set[str]:
    """Every digest any row names, whatever its status (trash that must be put back)."""
    rows = conn.execute(
        "SELECT sha256 FROM versions WHERE sha256 IS NOT NULL "
        "UNION SELECT twin_sha256 FROM versions WHERE twin_sha256 IS NOT NULL "
        "UNION SELECT id FROM datasets"
    )
    return {r[0] for r in rows}
