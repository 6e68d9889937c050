"""Where mirrors sync: one daemon thread in the registry process.

Why a thread here: the registry is the store's one writer and already owns the import path, the
sandbox zygote and the hook that builds twins; a separate process would need all of them again.
The thread is its own, never a waitress request thread (requests keep every worker), and it
takes no slot of the training pool: a sync's inspection runs in the sandbox child as an upload's
does, and the twin build after it is queued like any upload's. Mirrors sync one after another:
a box follows a handful of upstream refs, and one transfer at a time keeps the box's disk and
network for serving.

Schedule: each mirror every `every_s` seconds (times 0.9-1.0, so boxes started together drift
apart); after a failure sooner, with jitter, doubling from 1 s up to the interval. A request
(`POST /mirrors/{id}/sync`, a new mirror) sets `sync_requested` in the row; the loop reads the
rows at least once a second, and the route in this process also wakes it at once.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator

from app.errors import NotFound
from app.fleet.importer import ImportReport
from app.fleet.mirror import SyncError, SyncPolicy, sync_mirror
from app.fleet.upstream import ModelDepotUpstream, Upstream, is_mlflow
from app.store import Store
from app.store.mirrors import MirrorRecord, MirrorStore

log = logging.getLogger(__name__)
ROW_POLL_S = 1.0  # how often the loop looks for requested syncs and changed rows
FIRST_RETRY_S = 1.0


def retry_delay(failures: int, every_s: float) -> float:
    """Seconds before trying again after `failures` failures in a row: doubling from 1 s, never
    past the interval, jittered so a fleet that lost its central box does not return in step."""
    ceiling = min(every_s, FIRST_RETRY_S * 2 ** max(0, failures - 1))
    return ceiling * random.uniform(0.5, 1.0)


def next_delay(every_s: float) -> float:
    return every_s * random.uniform(0.9, 1.0)


def warm_sandbox() -> None:
    """Start the sandbox zygote before a promotion arrives, not when it does: its first start
    imports scikit-learn (seconds on a small box), which would otherwise delay every edge's
    first swap. A no-op once it runs; without a zygote, checks start their own child."""
    from app.formats.zygote_client import ZygoteLost, shared_zygote, zygote_supported

    if zygote_supported():
        try:
            shared_zygote()
        except ZygoteLost:
            pass


def upstream_for(mirror: MirrorRecord, store: Store, policy: SyncPolicy) -> Upstream:
    """A fresh upstream for one sync. An MLflow mirror's `token` holds its whole Authorization
    header value (Bearer or Basic, app/registry/mirrors_api.py); another ModelDepot's is the
    bare token."""
    if is_mlflow(mirror.upstream):
        from app.fleet.mlflow_upstream import MlflowUpstream

        return MlflowUpstream(mirror.upstream, mirror.token, store, policy.max_bytes)
    return ModelDepotUpstream(mirror.upstream, mirror.token)


class MirrorLoop:
    def __init__(self, store: Store, policy: SyncPolicy,
                 on_new_version: Callable[[ImportReport], None] | None = None) -> None:
        self.store = store
        self.mirrors = MirrorStore(store.db)
        self.policy = policy
        self.on_new_version = on_new_version
        self._due: dict[str, float] = {}  # mirror id -> monotonic time of its next sync
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mirror-sync", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.run_due()
            except Exception:  # the loop must outlive any one failure, e.g. a locked database
                log.exception("mirror loop: a round failed; trying again")
            self._wake.wait(ROW_POLL_S)
            self._wake.clear()

    def run_due(self) -> int:
        """Sync every mirror that is due or asked for; how many ran."""
        ran = 0
        mirrors = self.mirrors.all()
        if mirrors and self._thread is not None:
            warm_sandbox()
        for mirror in mirrors:
            if self._stopping.is_set():
                break
            if mirror.sync_requested or time.monotonic() >= self._due.get(mirror.id, 0.0):
                self.sync_one(mirror)
                ran += 1
        known = {m.id for m in self.mirrors.all()}
        for gone in set(self._due) - known:
            del self._due[gone]
        return ran

    def sync_one(self, mirror: MirrorRecord) -> None:
        self.mirrors.started(mirror.id)
        try:
            result = sync_mirror(self.store, mirror,
                                 upstream_for(mirror, self.store, self.policy), self.policy,
                                 self.on_new_version)
        except SyncError as exc:
            log.warning("mirror %s (%s): %s", mirror.id, mirror.upstream, exc.message)
            with _unless_removed():
                self.mirrors.failed(mirror.id, exc.message, exc.bytes_pulled)
            self._due[mirror.id] = time.monotonic() + retry_delay(mirror.failures + 1,
                                                                  mirror.every_s)
            return
        added = len(result.report.added) if result.report else 0
        with _unless_removed():
            self.mirrors.succeeded(mirror.id, result.etag, result.applied, result.bytes_pulled,
                                   added)
        self._due[mirror.id] = time.monotonic() + next_delay(mirror.every_s)


@contextlib.contextmanager
def _unless_removed() -> Iterator[None]:
    """A mirror removed while it synced has no row to record in: nothing to do."""
    try:
        yield
    except NotFound:
        pass
