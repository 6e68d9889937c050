"""Import a bundle from the browser: a dry-run preview of what would change, then the import,
through the very function the JSON API uses (bundles_api.run_import).

The form is multipart, so its CSRF token travels in the action URL, as on the upload page.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from flask import Blueprint, request
from werkzeug.wrappers import Response

from app.errors import ModelDepotError
from app.fleet.importer import ImportOptions
from app.intake import require_token_for_trust
from app.registry.bundles_api import SETTING, run_import
from app.registry.context import registry
from app.registry.dashboard.web import logged_in, page
from app.registry.services import sandbox_limits
from app.registry.uploads import receive_upload

bp = Blueprint("bundles", __name__)
FIELDS = ("mode", "trust", "aliases")


@bp.get("/import")
def form() -> Response:
    return page("import.html", values={"aliases": "on"}, nav="import")


@bp.post("/import")
def submit() -> Response:
    reg = registry()
    values: dict[str, str] = {}
    try:
        upload = receive_upload(request.stream, request.content_type, request.content_length,
                                reg.store.blobs, limit=reg.settings.max_upload_bytes,
                                setting=SETTING, slots=reg.uploads, text_fields=FIELDS)
        try:
            values = {name: upload.text(name) or "" for name in FIELDS}
            options = ImportOptions(dry_run=values["mode"] != "import",
                                    trust=values["trust"] == "on",
                                    aliases=values["aliases"] == "on",
                                    require_signed=reg.settings.require_signed_imports,
                            sandbox=sandbox_limits(reg.settings))
            token = logged_in() or reg.policy.token_presented(
                cast(Mapping[str, str], request.headers))
            require_token_for_trust(options.trust, token)
            with upload.temp.open("rb") as bundle:
                report = run_import(bundle, options)
        finally:
            upload.discard()
    except ModelDepotError as exc:
        return page("import.html", exc.status, error=exc.message, error_code=exc.code,
                    values=values, nav="import")
    return page("import.html", report=report.to_dict(), values=values, nav="import")
