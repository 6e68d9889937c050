"""Upload a model version from the browser, through the very functions the JSON API uses.

The form is multipart, so its CSRF token travels in the action URL: it is checked before the body
is read, and the file streams to the data dir exactly as an API upload does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from flask import Blueprint, request, url_for
from werkzeug.wrappers import Response

from app.errors import ModelDepotError
from app.registry.context import registry
from app.registry.dashboard.web import go, logged_in, page
from app.registry.schemas import VersionMetadata
from app.registry.services import receive_model_file, store_upload
from app.resources import resource_error
from app.store.names import check_name

bp = Blueprint("upload", __name__)
FIELDS = ("model", "description", "trust")


@bp.get("/upload")
def form() -> Response:
    return page("upload.html", values={"model": request.args.get("model", "")[:128]},
                nav="upload")


@bp.post("/upload")
def submit() -> Response:
    values: dict[str, str] = {}
    try:
        upload = receive_model_file(text_fields=FIELDS)
        try:
            values = {name: upload.text(name) or "" for name in FIELDS}
            name = check_name(values["model"])
            meta = VersionMetadata(description=values["description"],
                                   trust=values["trust"] == "on")
            token = logged_in() or registry().policy.token_presented(
                cast(Mapping[str, str], request.headers))
            record = store_upload(name, upload, meta, token)
        finally:
            upload.discard()
    except ModelDepotError as exc:
        exc = resource_error(exc) or exc
        return page("upload.html", exc.status, error=exc.message, error_code=exc.code,
                    values=values, nav="upload")
    return go(
        url_for("dashboard.models.show", name=record.model) + f"#v{record.version}",
        ok=f"Stored version {record.version} of {record.model} ({record.format}).",
    )

