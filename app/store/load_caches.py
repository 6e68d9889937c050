"""Load caches of versions (app/formats/load_cache.py): their blob and recipe on the version row.

Like a twin, a load cache never changes its version, and one that is missing only means servers
load the served file. Recording one follows the upload rules of catalog.py: the bytes go to a
fsynced temp file outside the lock, then are placed and the row updated in one write
transaction; a cache replaced by another, or whose version was deleted meanwhile, is retired in
the same transaction. No revision bump: what is served does not change, only how fast the next
load of it is (a server reads the row afresh whenever it loads a version).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from app.store.catalog import Store
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
            conn.execute(
                "UPDATE versions SET load_cache_sha256 = ?, load_cache_recipe = ?, "
                "updated_at = ? WHERE id = ?",
                (sha, json.dumps(recipe), time.time(), version_id),
            )
            trashed = trash_unreferenced(conn, store.blobs, store.paths.tmp,
                                         {row[0]} - {None, sha})
        empty_trash(trashed)
        return True
    finally:
        temp.unlink(missing_ok=True)
