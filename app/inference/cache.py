"""The model cache: which loaded version answers `name` / `name@ref`, kept in step with the store.

Hot path: `lookup` is one dict read. The store is consulted only on a miss and when its revision
changes (`refresh`, driven by the watcher); a new target is loaded and warmed beside the one
serving, then the dict entry is replaced in one assignment, so a request sees the old version or
the new one, never a gap. A version that fails to verify, load or warm is recorded in memory
(the inference server never writes to the store) and never replaces a working one.

All store reads run on one worker thread (SQLite connections are per thread), model loads on
another pool, both off the event loop. Every method here runs on the event loop.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import sqlite3
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from app.config import Settings
from app.errors import ModelDepotError, NotFound, StoreError
from app.inference.batching import MicroBatcher
from app.inference.corruption import report_corrupt
from app.inference.inputs import InputSpec
from app.inference.loaded import (
    CorruptModel,
    Failure,
    FileStamp,
    LoadedModel,
    Loader,
    ModelUnavailable,
    Prepared,
    linear_key,
    load_version,
    outputs_of,
    platform_of,
    twin_key,
)
from app.inference.memory import give_back
from app.inference.metrics import InferenceMetrics
from app.procmem import resident_bytes
from app.store import Store, VersionRecord
from app.store.names import check_name, parse_ref

log = logging.getLogger(__name__)

MAX_REMEMBERED_MISSES = 1024
T = TypeVar("T")
Key = tuple[str, str | None]
PRODUCTION = "production"


class ModelCache:
    def __init__(self, settings: Settings, store: Store | None, loader: Loader,
                 metrics: InferenceMetrics, predict_executor: Executor) -> None:
        self.settings = settings
        self.store = store
        self._loader = loader
        self._metrics = metrics
        self._predict_executor = predict_executor
        self._store_executor = ThreadPoolExecutor(1, thread_name_prefix="modeldepot-store")
        self._load_executor = ThreadPoolExecutor(2, thread_name_prefix="modeldepot-load")
        self._budget = settings.cache_memory_mb << 20
        self._base_rss: int | None = None  # this process's RSS before its first model load
        self._settling: asyncio.Future[None] | None = None
        self._newest: LoadedModel | None = None  # never evicted by _settle: just asked for
        self._targets: dict[Key, LoadedModel] = {}
        self._by_version: dict[int, LoadedModel] = {}
        self._loading: dict[tuple[int, str | None], asyncio.Task[LoadedModel]] = {}
        self._failures: dict[int, Failure] = {}
        self._missing: dict[Key, ModelDepotError] = {}
        self.revision: int | None = None
        self.ready = False

    # -- the request path ---------------------------------------------------------------------

    def lookup(self, name: str, ref: str | None) -> LoadedModel | None:
        model = self._targets.get((name, ref))
        if model is not None:
            model.last_used = time.monotonic()
        return model

    def holds(self, name: str, ref: str | None) -> bool:
        """Whether (name, ref) is loaded; unlike lookup, it does not count as a use."""
        return (name, ref) in self._targets

    async def get(self, name: str, ref: str | None) -> LoadedModel:
        return self.lookup(name, ref) or await self._resolve_and_load((name, ref))

    async def _resolve_and_load(self, key: Key) -> LoadedModel:
        name, ref = key
        check_name(name)
        if ref is not None:
            parse_ref(ref)
        known = self._missing.get(key)
        if known is not None:
            # A fresh copy: raising the stored one would chain every request's frames (and
            # body) onto its traceback, for as long as it is remembered.
            raise copy.copy(known)
        if self.store is None:
            raise NotFound(f"No model named {name!r}: the registry holds no models yet.")
        revision = self.revision
        try:
            record = await self._in_store(self.store.resolve, name, ref)
            model = await self.ensure_loaded(record)
        except (NotFound, ModelUnavailable) as exc:
            if revision == self.revision and revision is not None:
                if len(self._missing) >= MAX_REMEMBERED_MISSES:  # names are the client's
                    self._missing.clear()
                self._missing[key] = copy.copy(exc)  # asked again and again, answered from memory
            raise
        if revision == self.revision and revision is not None:
            self._target(key, model)
        return model

    def _target(self, key: Key, model: LoadedModel) -> None:
        """Serve `key` with `model`, unless another load evicted it while this caller waited:
        a target outside _by_version would escape the budget and never be evicted."""
        if self._by_version.get(model.record.id) is model:
            self._targets[key] = model

    async def ensure_loaded(self, record: VersionRecord) -> LoadedModel:
        twin = twin_key(record, self.settings.twins)
        model = self._by_version.get(record.id)
        if model is not None and model.twin_key == twin and \
                linear_key(model.record) == linear_key(record):
            return model
        if record.status != "ready":
            raise ModelUnavailable(
                f"Version {record.version} of {record.model!r} is {record.status}, not ready: "
                "it is not served."
            )
        failure = self._failures.get(record.id)
        if failure is not None:
            assert self.store is not None
            if FileStamp.of(self.store.served_path(record)[0]) == failure.stamp:
                raise ModelUnavailable(failure.reason)
            del self._failures[record.id]  # the file changed on disk: worth another try
        task = self._loading.get((record.id, twin))
        if task is None:
            task = asyncio.ensure_future(self._load(record, twin))
            self._loading[(record.id, twin)] = task
        return await asyncio.shield(task)

    async def _load(self, record: VersionRecord, twin: str | None) -> LoadedModel:
        assert self.store is not None
        loop = asyncio.get_running_loop()
        if self._base_rss is None:
            self._base_rss = resident_bytes()  # before any model and its libraries
        try:
            prepared = await loop.run_in_executor(
                self._load_executor,
                partial(load_version, self.store, record, self._loader, twin=twin),
            )
        except ModelDepotError as exc:
            if isinstance(exc, CorruptModel):
                report_corrupt(self.settings, record.model, record.version)
            self._failures[record.id] = Failure(
                record.model, record.version, exc.message,
                FileStamp.of(self.store.served_path(record)[0]) if record.sha256 else None,
            )
            self._metrics.load_failures.labels(record.model).inc()
            log.error("not serving %s version %d: %s", record.model, record.version, exc.message)
            raise ModelUnavailable(exc.message) from None
        finally:
            self._loading.pop((record.id, twin), None)
        model = self._adopt(prepared)
        self._metrics.load_seconds.labels(record.model).observe(prepared.seconds)
        log.info("loaded %s version %d (%s on %s, %.0f ms, %.1f MB)", record.model,
                 record.version, record.format, prepared.engine, prepared.seconds * 1000,
                 prepared.memory / (1 << 20))
        self._fit_budget(model)
        return model

    def _adopt(self, prepared: Prepared) -> LoadedModel:
        record, predictor, signature = prepared.record, prepared.predictor, prepared.signature
        settings = self.settings
        metrics = self._metrics.bind(record.model, record.version)
        batcher = MicroBatcher(
            predictor, self._predict_executor, window_s=settings.batch_window_ms / 1000,
            max_batch_size=settings.max_batch_size, max_rows=settings.max_batch_rows,
            on_batch=metrics.batch.observe,
        )
        model = LoadedModel(
            name=record.model, version=record.version, record=record,
            signature=signature, spec=InputSpec.from_signature(signature, settings.max_batch_rows),
            outputs=outputs_of(predictor), platform=platform_of(record.format),
            memory=prepared.memory, batcher=batcher, metrics=metrics,
            twin_key=prepared.twin_key, engine=prepared.engine,
        )
        self._by_version[record.id] = model
        self._count_loaded()
        return model

    def _fit_budget(self, keep: LoadedModel) -> None:
        """Evict until the loaded versions fit the budget twice over: by what their loads were
        charged, now, and by the process's resident memory above what it held before its first
        load (so libraries the models pulled in count too), in the background (_settle), so
        the request that caused the load does not wait for it."""
        total = sum(m.memory for m in self._by_version.values())
        self._evict(keep, total - self._budget)
        self._newest = keep
        if self._settling is None:
            self._settling = asyncio.ensure_future(self._settle())
            self._settling.add_done_callback(self._settled)

    def _settled(self, task: asyncio.Future[None]) -> None:
        self._settling = None
        if not task.cancelled() and task.exception() is not None:
            log.error("checking resident memory after an eviction failed: %r", task.exception())

    async def _settle(self) -> None:
        """Hand freed memory back to the system (memory.give_back: RSS would not show it
        otherwise; a load's own temporary buffers are freed too), then evict more while
        resident memory is over the budget. After every load: a /proc read and a trim cost
        milliseconds, a load far more."""
        loop = asyncio.get_running_loop()
        evicted = 1
        while evicted and self._base_rss is not None:
            await loop.run_in_executor(self._load_executor, give_back)
            over = (resident_bytes() or 0) - self._base_rss - self._budget
            if over <= 0:
                return
            # Requests still holding an evicted version delay its release: at worst this
            # evicts down to `keep` alone, as a budget smaller than one model would.
            evicted = self._evict(self._newest, over, "resident memory")

    def _evict(self, keep: LoadedModel | None, excess: int, measure: str = "load charges") -> int:
        """Least recently used first (never `keep`), until `excess` bytes are gone."""
        evicted = 0
        for model in sorted(self._by_version.values(), key=lambda m: m.last_used):
            if excess <= 0:
                break
            if model is keep:
                continue
            self._forget(model)
            excess -= model.memory
            evicted += 1
            log.info("evicted %s version %d (memory budget %d MB, by %s)", model.name,
                     model.version, self.settings.cache_memory_mb, measure)
        return evicted

    def _forget(self, model: LoadedModel) -> None:
        """Drop every reference the cache holds; requests holding it finish undisturbed."""
        if self._by_version.get(model.record.id) is model:  # not its reloaded successor
            del self._by_version[model.record.id]
        for key in [k for k, m in self._targets.items() if m is model]:
            del self._targets[key]
        self._count_loaded()

    def memory_use(self) -> dict[str, int | None]:
        """Loaded versions against the budget (cache_memory_mb), for the dashboard."""
        return {"loaded_models": len(self._by_version),
                "loaded_bytes": sum(m.memory for m in self._by_version.values()),
                "cache_memory_bytes": self._budget,
                "resident_bytes_before_models": self._base_rss}

    def _count_loaded(self) -> None:
        self._metrics.loaded.set(len(self._by_version))
        self._metrics.loaded_bytes.set(sum(m.memory for m in self._by_version.values()))

    # -- keeping up with the store ------------------------------------------------------------

    async def refresh(self) -> bool:
        """Reload the targets if the store changed; returns whether it had."""
        if self.store is None:
            return False
        revision = await self._in_store(self.store.revision)
        if revision == self.revision:
            return False
        previous, self.revision = self.revision, revision  # misses resolved before now: not kept
        self._missing.clear()
        try:
            for key, current in list(self._targets.items()):
                await self._retarget(key, current)
            await self._preload_production()
        except (StoreError, sqlite3.Error):
            self.revision = previous  # try the whole refresh again on the next poll
            raise
        self._release_untargeted()
        return True

    async def _retarget(self, key: Key, current: LoadedModel) -> None:
        assert self.store is not None
        try:
            record = await self._in_store(self.store.resolve, *key)
        except NotFound:
            if self._targets.get(key) is current:
                del self._targets[key]
                log.info("%s%s is no longer in the registry: not served", key[0],
                         f"@{key[1]}" if key[1] else "")
            return
        if record.id == current.record.id and \
                current.twin_key == twin_key(record, self.settings.twins) and \
                linear_key(current.record) == linear_key(record):
            return
        try:
            new = await self.ensure_loaded(record)
        except ModelDepotError:
            return  # recorded and logged; the current version keeps serving
        if self._targets.get(key) is current:
            self._targets[key] = new  # the swap: one assignment
            log.info("%s%s now serves version %d (was %d)", key[0],
                     f"@{key[1]}" if key[1] else "", new.version, current.version)

    async def _preload_production(self) -> None:
        assert self.store is not None
        for name in await self._in_store(self._production_models):
            key = (name, None)
            if key in self._targets:
                continue
            try:
                record = await self._in_store(self.store.resolve, name, None)
                self._target(key, await self.ensure_loaded(record))
            except ModelDepotError:
                continue  # recorded; shown in readiness and metadata

    def _production_models(self) -> list[str]:
        assert self.store is not None
        names: list[str] = []
        token = None
        while True:
            models, token = self.store.list_models(limit=1000, page_token=token)
            names += [m.name for m in models if PRODUCTION in m.aliases]
            if token is None:
                return names

    def _release_untargeted(self) -> None:
        targeted = {id(m) for m in self._targets.values()}
        for model in list(self._by_version.values()):
            if id(model) not in targeted:
                self._forget(model)

    # -- what the metadata and health routes show ---------------------------------------------

    def failures(self, name: str | None = None) -> list[Failure]:
        return [f for f in self._failures.values() if name is None or f.model == name]

    def served(self) -> dict[Key, LoadedModel]:
        return dict(self._targets)

    async def list_models(self) -> list[Any]:
        if self.store is None:
            return []
        models: list[Any]
        models, _ = await self._in_store(self.store.list_models, None, (), 1000)
        return models

    async def _in_store(self, fn: Any, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._store_executor, fn, *args)

    async def attach_store(self, opener: Any) -> bool:
        """Try to open the store (the registry may not have created it yet)."""
        self.store = await self._in_store(opener)
        return self.store is not None

    def close(self) -> None:
        if self._settling is not None:
            self._settling.cancel()
        for model in self._by_version.values():
            model.batcher.close()
        self._load_executor.shutdown(wait=False, cancel_futures=True)
        self._store_executor.shutdown(wait=True)
