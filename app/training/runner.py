"""The job runner: durable job rows, executed on Flask-Executor's process pool.

The rows in the store are the truth; the pool's futures are only how work reaches a process.
- `submit(kind, spec)` writes a `queued` row, then hands `worker(job_id, home)` to the pool.
  The worker claims the row itself, so `running` means a process really started it.
- Futures end in the pool's manager thread. Its callback only records the event; the runner's
  own thread does the work (store writes, pool rebuilds, hooks), so nothing slow or lock-taking
  ever runs inside the pool's machinery.
- A worker killed by the OS breaks the whole pool: every pending future fails with
  BrokenProcessPool and the other workers are terminated. The job whose worker died first is
  failed with a clear error; jobs whose workers were still alive, and jobs that had not started,
  are put back in the queue without losing their retry; the pool is rebuilt.
- A sweep every few seconds dispatches any queued row the pool does not hold and fails any
  running row no future stands for, so no job stays queued or running forever. It also ends
  the worker of a cancelled job that has not reached its next step within `cancel_grace`.
- `shutdown()` (graceful registry stop) ends the workers and leaves their rows `running`: the
  next start treats them like a crash and runs each once more (store/jobs.py, MAX_ATTEMPTS).

Why Flask-Executor is handed a pool instead of building one: it constructs
`ProcessPoolExecutor(max_workers)` with the platform's default start method (fork on Linux,
which copies the registry's threads, locks and SQLite connections into the child) and takes no
`mp_context` or initializer. A subclass cannot override its factory either: its proxy only looks
up attributes in the concrete class's own `__dict__`. So we give the instance a `_make_executor`
of our own, which `init_app` calls, and assign `_self` (its proxy target) to rebuild.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.connection import wait
from typing import TYPE_CHECKING, Any

from flask import Flask

from app.config import Settings
from app.diskspace import check_room
from app.store import Store
from app.store.jobs import JobRecord
from app.training.hooks import version_ready
from app.training.kinds import KINDS
from app.training.worker import init_worker, nudge

if TYPE_CHECKING:
    from flask_executor import Executor

log = logging.getLogger(__name__)
SWEEP_SECONDS = 2.0
CANCEL_GRACE_SECONDS = 30.0
_STOP = object()
KILLED = (
    "The worker process running this job was killed (by the operating system, e.g. when memory "
    "ran out, or by a signal). It was not retried: run it again with less data or a smaller "
    "model."
)
COLLATERAL = (
    "Another job's worker process was killed, which stops the whole pool; this job starts "
    "again in the rebuilt pool."
)


class JobRunner:
    def __init__(self, app: Flask, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.pool_size = settings.pool_size
        self.kinds = KINDS
        self._app = app
        self._home = str(settings.home)
        self._threads = max(1, (os.cpu_count() or 1) // self.pool_size)
        self._lock = threading.RLock()
        self._executor: Executor | None = None  # built on first use: tests make many apps
        self._generation = 0  # bumped by each rebuild; a broken pool is rebuilt once
        self._inflight: dict[str, tuple[Future[Any], int]] = {}
        self._events: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._closing = False
        self.cancel_grace = CANCEL_GRACE_SECONDS
        self._cancel_seen: dict[str, float] = {}  # job id -> when the sweep first saw its cancel

    # -- public -----------------------------------------------------------------------------

    def submit(self, kind: str, spec: dict[str, Any], *, model: str | None = None) -> JobRecord:
        """Queue a job of `kind` (a key of jobkinds.KINDS, checked by the request's parsing)
        and hand it to the pool. A training job is refused (507) before its row is written when
        the disk is below min_free_disk: it would write a model file. A twin build is not: it
        finishes an upload that passed the same check."""
        if kind == "train":
            check_room(self.settings.home, self.settings.min_free_disk, 0, "a training job")
        job = self.store.jobs.create(kind, spec, model)
        self.dispatch(job)
        return job

    def cancel(self, job_id: str) -> JobRecord:
        """Cancel in the store (the truth); a queued job also leaves the pool's queue."""
        job = self.store.jobs.request_cancel(job_id)
        if job.status == "cancelled":
            with self._lock:
                entry = self._inflight.get(job.id)
            if entry is not None:
                entry[0].cancel()
        return job

    def resume(self) -> None:
        """At registry start: retry interrupted jobs once, then queue every queued row again."""
        requeued, failed = self.store.jobs.recover_interrupted()
        if requeued or failed:
            log.info("jobs interrupted by the last stop: %d run again, %d failed",
                     len(requeued), len(failed))
        for job in self.store.jobs.active():
            self.dispatch(job)
        with self._lock:
            self._ensure_thread()

    def shutdown(self) -> None:
        """Stop the pool now. Running rows stay `running`; the next start runs them once more."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            executor, inflight = self._executor, list(self._inflight)
        self._events.put(_STOP)
        if executor is not None:
            pool: ProcessPoolExecutor = executor._self
            workers = _pool_workers(pool)
            pool.shutdown(wait=False, cancel_futures=True)
            # Training can take minutes and the pool would wait for it, so end the workers.
            for process in workers:
                process.terminate()
            pool.shutdown(wait=True)
        for job_id in inflight:
            if self.store.jobs.get(job_id).status == "running":
                self.store.jobs.append_log(job_id, "The registry stopped while this job ran.")
        if self._thread is not None:
            self._thread.join(10)

    # -- dispatch ---------------------------------------------------------------------------

    def dispatch(self, job: JobRecord) -> None:
        with self._lock:
            if self._closing or job.id in self._inflight:
                return
            executor = self._ready_executor()
            worker = self.kinds[job.kind].worker
            workers_before = len(multiprocessing.active_children())
            try:
                future = executor.submit(worker, job.id, self._home)
            except BrokenProcessPool:  # broke before its event was handled: rebuild now
                self._rebuild()
                future = executor.submit(worker, job.id, self._home)
            if len(multiprocessing.active_children()) > workers_before:
                # The submit spawned a worker. CPython (3.11 to 3.13) wakes the pool's manager
                # thread before it registers that worker, so the manager can go back to waiting
                # without watching it, and would miss its death (a SIGKILL) until some other
                # job ends. A second submission wakes the manager with the worker registered.
                executor._self.submit(nudge)
            self._inflight[job.id] = (future, self._generation)
            self._ensure_thread()

    def _ready_executor(self) -> Executor:
        if self._executor is None:
            self._app.config["JOBS_EXECUTOR_TYPE"] = "process"
            self._app.config["JOBS_EXECUTOR_MAX_WORKERS"] = self.pool_size
            from flask_executor import Executor  # the first job, not the registry's start

            executor = Executor(name="jobs")
            executor._make_executor = lambda app: self._new_pool()
            executor.init_app(self._app)
            executor.add_default_done_callback(self._on_future_done)
            self._executor = executor
        return self._executor

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.pool_size,
            mp_context=multiprocessing.get_context("spawn"),  # on every platform; see docstring
            initializer=init_worker,
            initargs=(self._threads, os.getpid()),
        )

    def _rebuild(self) -> None:
        assert self._executor is not None
        old: ProcessPoolExecutor = self._executor._self
        self._executor._self = self._new_pool()
        self._generation += 1
        old.shutdown(wait=False, cancel_futures=True)
        log.warning("a training worker died; the pool was rebuilt")

    def _ensure_thread(self) -> None:
        if self._thread is None and not self._closing:
            self._thread = threading.Thread(target=self._loop, name="job-runner", daemon=True)
            self._thread.start()

    # -- events -----------------------------------------------------------------------------

    def _on_future_done(self, future: Future[Any]) -> None:
        """In the pool's manager thread: record, never work. For a broken pool, note which
        workers are still alive now, before the pool terminates them, to tell the dead one."""
        alive: set[int] | None = None
        if not future.cancelled() and isinstance(future.exception(), BrokenProcessPool):
            alive = _alive_workers()
        self._events.put((future, alive))

    def _loop(self) -> None:
        while True:
            try:
                event = self._events.get(timeout=SWEEP_SECONDS)
            except queue.Empty:
                event = None
            if event is _STOP or self._closing:
                return
            try:
                if event is None:
                    self._sweep()
                else:
                    self._finished(*event)
            except Exception:
                log.exception("the job runner hit an error; it carries on")

    def _finished(self, future: Future[Any], alive: set[int] | None) -> None:
        with self._lock:
            # FutureProxy compares equal to the future it wraps.
            job_id = next((j for j, (f, _) in self._inflight.items() if f == future), None)
            if job_id is None:
                return
            _, generation = self._inflight.pop(job_id)
        if future.cancelled():
            return  # a queued job cancelled by the client; its row says so already
        error = future.exception()
        if isinstance(error, BrokenProcessPool):
            with self._lock:
                if generation == self._generation and not self._closing:
                    self._rebuild()
            self._recover(job_id, alive or set())
            return
        job = self.store.jobs.get(job_id)
        if error is not None:
            self.store.jobs.fail(job_id, f"The job's worker stopped with {type(error).__name__}: "
                                 f"{error}"[:2000])
        elif job.active:
            self.store.jobs.fail(job_id, "The job's worker ended without recording an outcome.")
        elif job.status == "succeeded" and self.kinds[job.kind].creates_version and job.model \
                and job.version is not None:
            version_ready(self.store, self, self.store.get_version(job.model, job.version))

    def _recover(self, job_id: str, alive: set[int]) -> None:
        """After a broken pool: fail the job whose worker died, queue the others again."""
        job = self.store.jobs.get(job_id)
        if job.status == "running":
            if job.worker_pid in alive:
                if not self.store.jobs.requeue(job_id, COLLATERAL, count_attempt=False):
                    return
            elif job.cancel_requested:
                self.store.jobs.fail(job_id, "Cancelled; its worker process ended.", "cancelled")
                return
            else:
                self.store.jobs.fail(job_id, KILLED)
                return
        elif job.status != "queued":
            return
        self.dispatch(self.store.jobs.get(job_id))

    def _sweep(self) -> None:
        for job in self.store.jobs.active():
            with self._lock:
                if self._closing:
                    return
                held = job.id in self._inflight
            if held:
                if job.status == "running" and job.cancel_requested:
                    self._end_if_stuck(job)
            elif job.status == "queued":
                self.dispatch(job)
            else:
                self.store.jobs.fail(job.id, "The registry lost track of this job's worker.")

    def _end_if_stuck(self, job: JobRecord) -> None:
        """A cancel takes effect at the job's next step; a step that takes longer than
        `cancel_grace` seconds (one long fit of an estimator that cannot be chunked) ends the
        worker instead. The broken pool then marks the job cancelled and requeues the others."""
        first_seen = self._cancel_seen.setdefault(job.id, time.monotonic())
        if time.monotonic() - first_seen < self.cancel_grace or job.worker_pid is None:
            return
        if job.worker_pid not in _alive_workers():
            return  # not one of our workers (any more): never signal a stranger
        self.store.jobs.append_log(job.id, f"The job did not reach its next step within "
                                   f"{self.cancel_grace:g} s of the cancel; its worker process "
                                   "was ended.")
        os.kill(job.worker_pid, getattr(signal, "SIGKILL", signal.SIGTERM))
        del self._cancel_seen[job.id]


def _alive_workers() -> set[int]:
    """Pids of this process's multiprocessing children that have not exited.

    A dead worker's sentinel is ready as soon as it exits, even before it can be reaped, so
    asking the sentinels is exact where `Process.is_alive()` could still say True.
    """
    children = [p for p in multiprocessing.active_children() if p.pid is not None]
    exited = set(wait([p.sentinel for p in children], timeout=0))
    return {p.pid for p in children if p.sentinel not in exited and p.pid is not None}


def _pool_workers(pool: ProcessPoolExecutor) -> list[multiprocessing.Process]:
    """The pool's own worker processes (not every child of this process: tests run several
    registries in one). ProcessPoolExecutor offers no public way to end its workers before
    Python 3.14's `terminate_workers()`; `_processes` is its pid -> Process map."""
    processes = getattr(pool, "_processes", None) or {}
    return list(processes.values())
