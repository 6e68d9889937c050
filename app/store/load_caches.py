"""Load caches of versions (app/formats/load_cache.py): their blob and recipe on the version row.

Like a twin, a load cache never changes its version, and one that is missing only means servers
load the served file. Recording one follows the upload rules of catalog.py: the bytes go to a
fsynced temp file outside the lock, then are placed and the row updated in one write
transaction; a cache replaced by another, or whose version was deleted meanwhile, is retired in
the same transaction. A pickled cache bumps no revision: what is served does not change, only how
fast the next load of it is (a server reads the row afresh whenever it loads a version). A linear
one does: servers then answer the version from its arrays (app/inference/loaded.py linear_key).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from app.store.catalog import Store
from app.store.db import bump_revision
from app.store.trash import empty_trash, trash_unreferenced


def record_load_cache(store: Store, version_id: int, data: bytes,
                      recipe: dict[str, Any]) -> bool:
    """Place the cache bytes and name them on the version; False if the version is gone or no
    longer ready."""
    temp: Path
    temp, sha, _ = store.blobs.receive(iter([data]))
    try:
        with store.db.write() as conn:
            row = conn.execute("SELECT load_cache_sha256 FROM versions WHERE id = ? "
                               "AND status = 'ready'", (version_id,)).fetchone()
            if row is None:
                return False
            store.blobs.adopt(temp, sha)
            # updated_at stays: the cache is the server's own derived data, not a change a
            # user made or would see (a bundle imported twice must read back the same).
            conn.execute(
                "UPDATE versions SET load_cache_sha256 = ?, load_cache_recipe = ? WHERE id = ?",
                (sha, json.dumps(recipe), version_id),
            )
            if recipe.get("form") == "linear":
                bump_revision(conn)
            trashed = trash_unreferenced(conn, store.blobs, store.paths.tmp,
                                         {row[0]} - {None, sha})
        empty_trash(trashed)
        return True
    finally:
        temp.unlink(missing_ok=True)


def versions_needing_load_cache(store: Store, environment: dict[str, str]) -> list[Any]:
    """Ready versions servers load through scikit-learn that have no load cache, or one written
    by other library versions (an upgrade), and no compile job queued or running for them:
    versions an earlier release stored, and imported versions whose twin travelled."""
    from app.store.catalog import VERSION_SELECT
    from app.store.records import VersionRecord

    with store.db.read() as conn:
        rows = conn.execute(
            VERSION_SELECT + " WHERE v.status = 'ready' AND v.format != 'onnx' AND NOT EXISTS ("
            "SELECT 1 FROM jobs j WHERE j.kind = 'compile' AND j.status IN ('queued', 'running') "
            "AND json_extract(j.spec, '$.version_id') = v.id) ORDER BY v.id"
        ).fetchall()
    records = [VersionRecord.from_row(row, {}, []) for row in rows]
    return [r for r in records if r.load_cache_sha256 is None or r.load_cache_recipe is None
            or r.load_cache_recipe.get("environment") != environment]
