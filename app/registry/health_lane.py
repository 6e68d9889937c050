"""The registry's health lane: a probe never waits behind uploads, training or dashboard pages.

Waitress reads and parses every request on its one event-loop thread, then queues the connection
for its pool of worker threads. With every worker busy inspecting an upload, `GET /api/v1/health`
used to wait in that queue for seconds, and the supervisor took a busy registry for a dead one.

Here the queue is split where waitress hands a parsed request over (`add_task`): a health probe
goes to a lane of its own with one dedicated thread, which nothing else ever occupies; everything
else goes to the worker pool as before. The probe still runs through the Flask app (the Host check,
the security headers), it just never queues behind real work. Its answer is small, so the lane
thread never waits for the event loop to flush it.
"""

from __future__ import annotations

from typing import Any

from waitress.task import ThreadedTaskDispatcher

PROBE_PATHS = frozenset({"/api/v1/health"})
PROBE_METHODS = frozenset({"GET", "HEAD"})


def is_probe(channel: Any) -> bool:
    """Whether the next request waiting on a waitress channel is a health probe.

    Waitress calls add_task with the channel whose `requests[0]` is the request to serve next
    (under the channel's lock); a request that failed to parse has no path and goes to the pool,
    which answers its error.
    """
    requests = getattr(channel, "requests", None)
    if not requests:
        return False
    request = requests[0]
    return (not request.error and getattr(request, "command", None) in PROBE_METHODS
            and getattr(request, "path", None) in PROBE_PATHS)


class LanedDispatcher(ThreadedTaskDispatcher):
    """Waitress's worker pool, with health probes diverted to a one-thread lane of their own."""

    def __init__(self, threads: int) -> None:
        super().__init__()
        self.set_thread_count(threads)
        self.lane = ThreadedTaskDispatcher()
        self.lane.set_thread_count(1)

    def add_task(self, task: Any) -> None:
        if is_probe(task):
            self.lane.add_task(task)
        else:
            super().add_task(task)

    def shutdown(self, cancel_pending: bool = True, timeout: int = 5) -> bool:
        self.lane.shutdown(cancel_pending, 1)
        return bool(super().shutdown(cancel_pending, timeout))
