"""Admission of uploads: past `max_uploads_in_progress`, one more is refused, not queued.

An upload in progress holds a worker thread, a temp file and (while its file is inspected) CPU
and memory; absorbing every upload at once made the registry slow for everyone and, with large
forests, ran it out of descriptors. A refused upload gets 503 with Retry-After before the app
reads a byte of its body, so nothing of it is written; `modeldepot models push` and the other
upload commands wait and send it again (app/client.py).
"""

from __future__ import annotations

import threading

from app.errors import Overloaded

RETRY_AFTER_SECONDS = 2


class UploadSlots:
    """A counted set of slots, taken without waiting."""

    def __init__(self, limit: int, retry_after: int = RETRY_AFTER_SECONDS) -> None:
        self.limit = limit
        self.retry_after = retry_after
        self._lock = threading.Lock()
        self.in_progress = 0
        self.refused = 0  # since start, for tests and logs

    def take(self) -> None:
        """Take a slot, or raise Overloaded (503, Retry-After) when all are taken."""
        with self._lock:
            if self.in_progress >= self.limit:
                self.refused += 1
                raise Overloaded(
                    f"The registry is busy: {self.limit} uploads are in progress (setting "
                    f"max_uploads_in_progress). Nothing was stored; send it again in "
                    f"{self.retry_after} s.", retry_after=self.retry_after)
            self.in_progress += 1

    def give_back(self) -> None:
        with self._lock:
            if self.in_progress <= 0:
                raise RuntimeError("an upload slot was given back twice")
            self.in_progress -= 1
