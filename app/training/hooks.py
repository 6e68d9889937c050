"""What the registry does when a version becomes ready, whoever made it.

`version_ready(store, runner, version)` is called once for every version that reaches
`ready` through the registry: an upload (versions_api, after `Store.add_version` returned) or a
training job (the runner, after the job's row says `succeeded`). It runs in the registry process,
on a request thread or the runner's thread, so it must be quick: heavy work belongs in a job.

It applies retention to the version's model (app/store/retention.py: versions beyond
`keep_versions` and datasets older than `keep_datasets_days` go), then queues the version's ONNX
twin build, a `compile` job (app/training/twin_build.py); the
version's twin shows `queued` until the job records its outcome. A failing hook is logged and
never fails the upload or the job that made the version.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from app.config import Settings
from app.store import Store, VersionRecord
from app.store.retention import collect, policy_of
from app.store.twins import NEEDS_NO_TWIN, mark_queued


class JobSubmitter(Protocol):
    """What a hook needs of the runner (runner.JobRunner), named here so the two modules do not
    import each other."""

    settings: Settings

    def submit(self, kind: str, spec: dict[str, Any], *, model: str | None = None) -> Any: ...

log = logging.getLogger(__name__)


def on_version_ready(store: Store, runner: JobSubmitter, version: VersionRecord) -> None:
    """Queue the ONNX twin build of a scikit-learn version (unless the setting twins is off)."""
    if not runner.settings.twins or version.format in NEEDS_NO_TWIN:
        return
    if mark_queued(store, version.id):
        runner.submit("compile", {"version_id": version.id, "model": version.model,
                                  "version": version.version}, model=version.model)


def version_ready(store: Store, runner: JobSubmitter, version: VersionRecord) -> None:
    # Each step on its own: a failing twin queue must not skip retention, nor the reverse.
    for step in (_retain, on_version_ready):
        try:
            step(store, runner, version)
        except Exception:
            log.exception("the version-ready hook %s failed for %s version %d", step.__name__,
                          version.model, version.version)


def _retain(store: Store, runner: JobSubmitter, version: VersionRecord) -> None:
    collect(store, policy_of(runner.settings), model=version.model)
