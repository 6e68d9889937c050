"""Inside a pool worker: the protocol every job kind follows, whatever its work is.

A worker function (a module-level `run(job_id, home)` in training.py, compile.py, ...) calls
`run_job(job_id, home, body)`. That opens the store in this process, claims the row (a job
cancelled while queued is skipped here), runs `body(store, job, ctx)`, and writes the outcome.
`body` reports progress between its real steps with `ctx.step(...)`, which is also where a
cancel takes effect: it raises Cancelled, and the row ends `cancelled`.

Nothing here returns data through the pool: the row is the result, so a registry that restarts
or a future that is lost never loses an outcome.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.config import Paths
from app.errors import ModelDepotError
from app.store import Store
from app.store.jobs import JobRecord, JobStore, LostClaim

log = logging.getLogger(__name__)
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
REGISTRY_POLL_SECONDS = 0.5


class Cancelled(Exception):
    """The client cancelled the job; raised by JobContext.step at the next step."""


@dataclass
class Outcome:
    """What a successful job leaves on its row."""

    metrics: dict[str, float] = field(default_factory=dict)
    model: str | None = None
    version: int | None = None


@dataclass
class JobContext:
    jobs: JobStore
    job_id: str
    pid: int

    def step(self, name: str, progress: float, line: str | None = None) -> None:
        """Record progress (0..1) and the step's name; raise Cancelled if a cancel arrived."""
        if self.jobs.report(self.job_id, self.pid, progress, name, line):
            raise Cancelled()

    def log(self, line: str) -> None:
        self.jobs.append_log(self.job_id, line)

    @contextmanager
    def logged_warnings(self) -> Iterator[None]:
        """Warnings raised inside (convergence, undefined metrics) go to the job's log."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
        for w in caught[:20]:
            self.log(f"warning: {str(w.message)[:500]}")


Body = Callable[[Store, JobRecord, JobContext], Outcome]


def run_job(job_id: str, home: str, body: Body) -> None:
    """Claim the job, run `body`, record how it ended. Never raises for the job's own failures."""
    pid = os.getpid()
    store = Store(Paths(Path(home)))
    try:
        job = store.jobs.claim(job_id, pid)
        if job is None:
            return  # cancelled while queued, or already handled by another attempt
        ctx = JobContext(store.jobs, job_id, pid)
        try:
            outcome = body(store, job, ctx)
        except Cancelled:
            store.jobs.finish(job_id, pid, "cancelled", error="")
            return
        except LostClaim:
            return  # the registry gave this job to someone else; leave the row alone
        except ModelDepotError as exc:
            store.jobs.finish(job_id, pid, "failed", error=exc.message)
            return
        except Exception as exc:  # the estimator's own errors say what was wrong with the data
            log.warning("job %s failed", job_id, exc_info=True)
            store.jobs.finish(job_id, pid, "failed", error=f"{type(exc).__name__}: {exc}"[:2000])
            return
        store.jobs.finish(job_id, pid, "succeeded", metrics=outcome.metrics,
                          model=outcome.model, version=outcome.version)
    finally:
        store.close()


def init_worker(threads: int, registry_pid: int) -> None:
    """Pool initializer: runs once in each fresh (spawned) worker before any job.

    - BLAS/OpenMP threads are capped so pool_size workers share the cores instead of each
      taking all of them; set before numpy loads, which is why nothing above imports it.
    - Ctrl+C in a terminal reaches the whole process group: only the registry decides what
      happens to jobs then, so workers ignore SIGINT.
    - The worker must not outlive the registry (nor the supervisor): `watch_parent` covers
      the supervisor; the registry watch covers a registry started by hand and killed.
    - scikit-learn and skops load here, before any job is claimed.
    """
    for name in THREAD_ENV_VARS:
        os.environ.setdefault(name, str(threads))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s [train-worker] %(name)s: %(message)s")
    from app.parentwatch import watch_parent

    if not watch_parent():
        # The registry's pid comes from the registry itself: if it died while this process was
        # still starting, our parent is already someone else, and comparing against that would
        # keep us waiting forever.
        threading.Thread(target=_exit_with_registry, args=(registry_pid,),
                         name="modeldepot-registrywatch", daemon=True).start()
    # Imported now, while no job waits on it, so a job's steps time its own work (~2 s).
    import sklearn.model_selection  # noqa: F401
    import skops.io  # noqa: F401


def nudge() -> None:
    """Does nothing: the runner submits it only to wake the pool's manager thread."""


def _exit_with_registry(registry_pid: int) -> None:
    # A changed parent pid means the registry died and we were re-parented.
    while os.getppid() == registry_pid:
        time.sleep(REGISTRY_POLL_SECONDS)
    os._exit(1)


def plain_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """Finite floats only: JSON has no NaN, and a metric that is undefined is left out."""
    out = {}
    for key, value in metrics.items():
        number = float(value)
        if number == number and abs(number) != float("inf"):
            out[key] = number
    return out
