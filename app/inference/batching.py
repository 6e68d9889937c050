"""Adaptive micro-batching: concurrent requests for one model version share one predict call.

scikit-learn pays a fixed cost per call (input checks, and for a forest a pass over every tree)
that dwarfs the per-row cost, so stacking the rows of concurrent requests multiplies throughput.
The batcher runs at most one call per model version at a time, in a worker thread so the event
loop keeps parsing requests meanwhile; whatever queued during a call goes out as the next batch.

Adaptive: a lone client never waits. The batcher tracks how many requests recently came
together; while that figure is 1 a request is dispatched on the next loop turn (which still lets
requests parsed in the same turn join). Under concurrent load it waits until about that many are
queued, at most `batch_window_ms`, capped at `max_batch_size` requests and `max_rows` rows.
When the model answers a lone request in well under a millisecond (a LogisticRegression), the
call runs right on the event loop: it holds the GIL nearly throughout anyway, so a thread would
only add its handoff (about 0.1 ms).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from app.errors import Unprocessable

if TYPE_CHECKING:
    from app.formats.predictor import Predictor

Prediction = tuple[np.ndarray, np.ndarray | None]
# A lone request whose model usually answers faster than this runs on the event loop.
INLINE_CALL_S = 0.0005


class ModelRefused(Unprocessable):
    """The model raised on input that passed the signature checks."""

    code = "model_refused_input"


@dataclass(eq=False, slots=True)
class _Pending:
    rows: np.ndarray
    proba: bool
    future: asyncio.Future[Prediction]


class MicroBatcher:
    def __init__(
        self,
        predictor: Predictor,
        executor: Executor,
        *,
        window_s: float,
        max_batch_size: int,
        max_rows: int,
        on_batch: Callable[[int], None] | None = None,
        inline_call_s: float = INLINE_CALL_S,
    ) -> None:
        self._predictor = predictor
        # Twins give labels and probabilities from one graph run (app/formats/twin.py), and
        # answer a few rows in microseconds: less than handing the call to a thread costs, so
        # batches up to `inline_rows` rows run right on the event loop.
        self._predict_both = getattr(predictor, "predict_with_proba", None)
        self._inline_rows = int(getattr(predictor, "inline_rows", 0))
        self._executor = executor
        self._window_s = max(window_s, 0.0)
        self._max_batch = max(max_batch_size, 1)
        self._max_rows = max(max_rows, 1)
        self._on_batch = on_batch
        self._queue: list[_Pending] = []
        self._queued_rows = 0
        self._busy = False
        self._soon: asyncio.Handle | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._concurrency = 1.0  # requests recently seen together (moving average)
        self._inline_call_s = inline_call_s
        self._call_s = float("inf")  # how long a call takes (moving average; unknown at first)

    async def predict(self, rows: np.ndarray, proba: bool) -> Prediction:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Prediction] = loop.create_future()
        self._queue.append(_Pending(rows, proba, future))
        self._queued_rows += len(rows)
        if not self._busy:
            self._schedule(loop)
        return await future

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        target = min(self._max_batch, max(1, round(self._concurrency)))
        full = len(self._queue) >= target or self._queued_rows >= self._max_rows
        if full or self._window_s == 0.0:
            if self._soon is None:
                # Next loop turn, not now: requests parsed in this turn still join the batch.
                self._soon = loop.call_soon(self._dispatch)
        elif self._timer is None:
            self._timer = loop.call_later(self._window_s, self._dispatch)

    def _dispatch(self) -> None:
        self._soon = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._busy or not self._queue:
            return
        batch: list[_Pending] = []
        rows = 0
        while self._queue and len(batch) < self._max_batch:
            item = self._queue[0]
            if batch and rows + len(item.rows) > self._max_rows:
                break
            batch.append(self._queue.pop(0))
            rows += len(item.rows)
        self._queued_rows -= rows
        batch = [p for p in batch if not p.future.done()]  # callers that went away
        if not batch:
            self._after(0)
            return
        self._busy = True
        lone_and_quick = len(batch) == 1 and self._concurrency < 1.5 and \
            self._call_s < self._inline_call_s
        if rows <= self._inline_rows or lone_and_quick:
            self._finish(batch, self._run(batch))
            return
        loop = asyncio.get_running_loop()
        done = loop.run_in_executor(self._executor, self._run, batch)
        done.add_done_callback(lambda f: self._deliver(batch, f))

    def _run(self, batch: list[_Pending]) -> list[Prediction | BaseException]:
        """In a worker thread (or inline, see __init__): one call for the whole batch; one per
        request if it fails."""
        try:
            started = time.perf_counter()
            result = self._call(
                batch[0].rows if len(batch) == 1 else np.concatenate([p.rows for p in batch]),
                any(p.proba for p in batch),
            )
            took = time.perf_counter() - started
            self._call_s = took if self._call_s == float("inf") else \
                0.8 * self._call_s + 0.2 * took
            return self._split(batch, result)
        except Exception as exc:
            if len(batch) == 1:
                return [_refused(exc)]
        results: list[Prediction | BaseException] = []
        for item in batch:  # isolate the request the model chokes on
            try:
                results.append(self._call(item.rows, item.proba))
            except Exception as exc:
                results.append(_refused(exc))
        return results

    def _call(self, rows: np.ndarray, proba: bool) -> Prediction:
        if proba and self._predict_both is not None:
            labels, probabilities = self._predict_both(rows)
            return np.asarray(labels), probabilities
        predictions = np.asarray(self._predictor.predict(rows))
        probabilities = np.asarray(self._predictor.predict_proba(rows)) if proba else None
        return predictions, probabilities

    @staticmethod
    def _split(batch: list[_Pending], result: Prediction) -> list[Prediction | BaseException]:
        predictions, probabilities = result
        out: list[Prediction | BaseException] = []
        start = 0
        for item in batch:
            stop = start + len(item.rows)
            out.append((
                predictions[start:stop],
                probabilities[start:stop] if item.proba and probabilities is not None else None,
            ))
            start = stop
        return out

    def _deliver(self, batch: list[_Pending], done: asyncio.Future[Any]) -> None:
        if done.cancelled() or done.exception() is not None:
            error = done.exception() if not done.cancelled() else None
            failure = _refused(error) if error else asyncio.CancelledError()
            results: list[Any] = [failure] * len(batch)
        else:
            results = done.result()
        self._finish(batch, results)

    def _finish(self, batch: list[_Pending], results: list[Any]) -> None:
        self._busy = False
        for item, result in zip(batch, results, strict=True):
            if item.future.done():
                continue
            if isinstance(result, BaseException):
                item.future.set_exception(result)
            else:
                item.future.set_result(result)
        if self._on_batch is not None:
            self._on_batch(len(batch))
        self._after(len(batch))

    def _after(self, served: int) -> None:
        together = served + len(self._queue)
        self._concurrency = 0.5 * self._concurrency + 0.5 * max(together, 1)
        if self._queue:
            self._schedule(asyncio.get_running_loop())

    def close(self) -> None:
        """Fail what is queued (server shutdown); a batch already running still completes."""
        for handle in (self._soon, self._timer):
            if handle is not None:
                handle.cancel()
        for item in self._queue:
            if not item.future.done():
                item.future.cancel()
        self._queue.clear()
        self._queued_rows = 0


def _refused(exc: BaseException) -> BaseException:
    if not isinstance(exc, Exception):
        return exc
    detail = str(exc).splitlines()[0][:200] if str(exc) else ""
    return ModelRefused(
        f"The model could not predict for this input ({type(exc).__name__}"
        + (f": {detail}" if detail else "") + ")."
    )
