"""What the registry does when a version becomes ready, whoever made it.

`version_ready(store, runner, version)` is called once for every version that reaches
`ready` through the registry: an upload (versions_api, after `Store.add_version` returned) or a
training job (the runner, after the job's row says `succeeded`). It runs in the registry process,
on a request thread or the runner's thread, so it must be quick: heavy work belongs in a job.

It applies retention to the version's model (app/store/retention.py: versions beyond
`keep_versions` and datasets older than `keep_datasets_days` go), then queues the version's
`compile` job (app/training/twin_build.py): its load cache (app/formats/load_cache.py) and, with
the setting twins on, its ONNX twin build; the version's twin shows `queued` until the job
records its outcome. A failing hook is logged and
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
    """Queue the compile job of a scikit-learn version: its load cache, and its ONNX twin
    unless the setting twins is off (then the twin stays `none`)."""
    if version.format in NEEDS_NO_TWIN:
        return
    twin = runner.settings.twins
    if twin and not mark_queued(store, version.id):
        return
    runner.submit("compile", {"version_id": version.id, "model": version.model,
                              "version": version.version, "twin": twin}, model=version.model)


def queue_missing_load_caches(store: Store, runner: JobSubmitter) -> int:
    """At registry start: a load-cache-only compile job for each ready version without a
    current load cache (app/store/load_caches.py); returns how many were queued."""
    from app.formats.load_cache import cache_environment
    from app.store.load_caches import versions_needing_load_cache

    return sum(queue_load_cache(runner, version)
               for version in versions_needing_load_cache(store, cache_environment()))


def queue_load_cache(runner: JobSubmitter, version: VersionRecord) -> bool:
    """A compile job that writes the version's load cache only (its twin is left alone): for a
    version whose twin travelled with it, or that an earlier release stored. False (logged) if
    it could not be queued."""
    try:
        runner.submit("compile", {"version_id": version.id, "model": version.model,
                                  "version": version.version, "twin": False},
                      model=version.model)
    except Exception:
        log.exception("queueing the load cache of %s version %d failed", version.model,
                      version.version)
        return False
    return True


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
