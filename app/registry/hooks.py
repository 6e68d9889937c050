"""What the registry does when a version becomes ready, whoever made it.

`on_version_ready(store, runner, version)` is called once for every version that reaches
`ready` through the registry: an upload (versions_api, after `Store.add_version` returned) or a
training job (the runner, after the job's row says `succeeded`). It runs in the registry process,
on a request thread or the runner's thread, so it must be quick: heavy work belongs in a job,
e.g. `runner.submit("compile", {"model": version.model, "version": version.version},
model=version.model)` once the "compile" kind is in jobkinds.KINDS (ONNX twin builds).

Today it does nothing. `version_ready` is what callers use: a failing hook is logged and never
fails the upload or the job that made the version.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from app.store import Store, VersionRecord

if TYPE_CHECKING:
    from app.registry.runner import JobRunner

log = logging.getLogger(__name__)


def on_version_ready(store: Store, runner: JobRunner, version: VersionRecord) -> None:
    """A no-op for now; the ONNX twin build submits its compile job here."""


def version_ready(store: Store, runner: JobRunner | None, version: VersionRecord) -> None:
    if runner is None:
        return
    try:
        on_version_ready(store, runner, version)
    except Exception:
        log.exception("the version-ready hook failed for %s version %d", version.model,
                      version.version)
