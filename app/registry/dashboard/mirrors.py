"""The mirrors page: each upstream this box follows, its state, lag and last error, and a Sync now
button that asks the loop exactly as POST /api/v1/mirrors/{id}/sync does."""

from __future__ import annotations

import time

from flask import Blueprint, url_for
from werkzeug.wrappers import Response

from app.errors import ModelDepotError
from app.registry.context import registry
from app.registry.dashboard.web import go, page
from app.registry.mirrors_api import mirror_loop
from app.store.mirrors import MirrorStore

bp = Blueprint("mirrors", __name__)


@bp.get("/mirrors")
def index() -> Response:
    now = time.time()
    mirrors = [m.to_dict(now) for m in MirrorStore(registry().store.db).all()]
    return page("mirrors.html", mirrors=mirrors, nav="mirrors")


@bp.post("/mirrors/<mirror_id>/sync")
def sync_now(mirror_id: str) -> Response:
    try:
        MirrorStore(registry().store.db).request_sync(mirror_id)
    except ModelDepotError as exc:
        return go(url_for(".index"), error=exc.message)
    mirror_loop().wake()
    return go(url_for(".index"), ok=f"Sync of mirror {mirror_id} requested.")
