"""Tell the registry that a version's file failed its sha256 check when it was loaded.

docs/api.md: "a mismatch marks the version `corrupt`". The inference server never writes to the
store (docs/architecture.md), so it asks the registry, which hashes the file itself (`POST
.../verify`): a report that is wrong, or arrives twice, changes nothing. Best effort, off the event
loop: if the registry is down, `modeldepot doctor` (and the next load) will find the file again.
"""

from __future__ import annotations

import logging
import threading
from urllib.parse import quote

from app.config import Settings

log = logging.getLogger(__name__)


def report_corrupt(settings: Settings, model: str, version: int) -> threading.Thread:
    def run() -> None:
        from app.client import Client
        from app.errors import ModelDepotError
        from app.net import base_url
        from app.security import api_token

        path = f"/api/v1/models/{quote(model, safe='')}/versions/{version}/verify"
        try:
            client = Client(base_url(settings.host, settings.registry_port), api_token(settings),
                            timeout=600)  # the registry hashes the whole file
            status = client.request("POST", path)["status"]
            log.warning("reported %s version %d to the registry: now %s", model, version, status)
        except ModelDepotError as exc:
            log.warning("could not report %s version %d to the registry: %s", model, version,
                        exc)

    thread = threading.Thread(target=run, name="modeldepot-report-corrupt", daemon=True)
    thread.start()
    return thread
