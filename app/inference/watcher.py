"""Poll the store's revision and let the cache catch up: how a registry change reaches inference.

Polling a single-row SQLite read every `poll_interval_ms` is cheap and works across processes
with no extra channel (and so with the registry down, restarting, or not started yet). When the
database does not exist yet, the watcher keeps trying to open it read-only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3

from app.config import Paths
from app.errors import StoreError
from app.inference.cache import ModelCache
from app.store import Store

log = logging.getLogger(__name__)


def open_store(paths: Paths) -> Store | None:
    """The store, read-only, or None while the registry has not created its database."""
    if not paths.database.exists():
        return None
    try:
        store = Store(paths, readonly=True)
        store.revision()  # the schema may still be in the making
    except (StoreError, sqlite3.Error) as exc:
        log.info("the registry's database is not readable yet (%s); retrying", exc)
        return None
    return store


class StoreWatcher:
    def __init__(self, cache: ModelCache, paths: Paths, interval_s: float) -> None:
        self.cache = cache
        self.paths = paths
        self.interval_s = max(interval_s, 0.01)
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    async def check(self) -> None:
        """One poll: open the store if needed, then refresh the cache if its revision moved."""
        if self.cache.store is None:
            if not await self.cache.attach_store(lambda: open_store(self.paths)):
                return
            log.info("opened the registry's database at %s", self.paths.database)
        try:
            await self.cache.refresh()
        except (StoreError, sqlite3.Error) as exc:
            if not self._failing:
                log.warning("reading the store failed (%s); serving what is loaded, retrying", exc)
            self._failing = True
            return
        if self._failing:
            log.info("reading the store works again")
        self._failing = False

    def start(self, after: asyncio.Task[None] | None = None) -> None:
        """Poll from now on; with `after` (the first check, running), once it has finished, so
        two refreshes never overlap."""
        self._task = asyncio.create_task(self._run(after), name="modeldepot-store-watcher")

    async def _run(self, after: asyncio.Task[None] | None) -> None:
        if after is not None:
            with contextlib.suppress(Exception):  # it logs its own failures
                await asyncio.shield(after)
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.check()
            except Exception:  # the watcher must outlive any one bad poll
                log.exception("store watcher poll failed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
