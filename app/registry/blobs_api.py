"""GET /blobs/{sha256}: a published file by its hash, for mirrors (docs/mirrors.md).

Only files a ready version names (its file, the copy it is served from, its verified twin) are
published; a dataset or a failed upload's file is never handed out by digest. Werkzeug's
conditional `send_file` answers `Range` (206), `If-Range` and `If-None-Match` against the ETag,
which is the sha256 itself: the bytes behind a digest never change, so a mirror resumes a cut
transfer from where it stopped and never fetches the same bytes twice.
"""

from __future__ import annotations

from flask import Response, send_file

from app.errors import NotFound
from app.registry.api import ApiBlueprint
from app.registry.context import registry
from app.store.references import is_published

api = ApiBlueprint("blobs", "/api/v1")


@api.route("GET", "/blobs/<sha256>",
           "A published file by its sha256 (Range, If-Range, ETag = the sha256)",
           content_type="application/octet-stream")
def get_blob(sha256: str) -> Response:
    store = registry().store
    path = store.blobs.path(sha256)  # checks the digest's form: no client string becomes a path
    with store.db.read() as conn:
        published = is_published(conn, sha256)
    if not published or not path.is_file():
        raise NotFound(f"No published file with sha256 {sha256[:12]}...", code="no_such_blob")
    return send_file(path, mimetype="application/octet-stream", etag=sha256, conditional=True,
                     max_age=0)
