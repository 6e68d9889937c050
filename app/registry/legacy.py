"""Pickle versions stored by an earlier release get the skops copy servers load, once.

Servers never open pickles (docs/security.md): this release serves a pickle version from a skops
copy made in the sandbox at upload. Versions uploaded before that have no copy, so at start the
registry makes one for each, in the sandbox, in a background thread (they were trusted when they
were uploaded). A version that cannot be converted stays stored and downloadable; the inference
server says why it does not serve it.
"""

from __future__ import annotations

import logging
import threading

from app.config import Settings
from app.errors import ModelDepotError
from app.formats import SandboxLimits, inspect_upload
from app.store import Store

log = logging.getLogger(__name__)


def convert_legacy_pickles(store: Store, settings: Settings) -> int:
    """Convert every unconverted pickle version; returns how many got their copy."""
    converted = 0
    limits = SandboxLimits(settings.sandbox_memory_mb, settings.sandbox_seconds)
    for record in store.unconverted_pickles():
        try:
            inspection = inspect_upload(store.blob_path(record), trust=True,
                                        receive=store.blobs.receive, limits=limits)
        except ModelDepotError as exc:
            log.warning("%s version %d stays a pickle servers will not open: %s", record.model,
                        record.version, exc.message)
            continue
        if inspection.served is not None and store.set_served(record.id, inspection.served):
            converted += 1
            log.info("%s version %d: served from a skops copy from now on", record.model,
                     record.version)
    return converted


def start_converting(store: Store, settings: Settings) -> threading.Thread:
    thread = threading.Thread(target=_run, args=(store, settings), daemon=True,
                              name="modeldepot-legacy-pickles")
    thread.start()
    return thread


def _run(store: Store, settings: Settings) -> None:
    try:
        convert_legacy_pickles(store, settings)
    except Exception:
        log.exception("converting the pickles of an earlier release failed")
