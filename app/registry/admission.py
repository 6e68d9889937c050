"""Admission of uploads: past `max_uploads_in_progress`, one more is refused, not queued, but
it is given a place in line.

An upload in progress holds a worker thread, a temp file and (while its file is inspected) CPU
and memory; absorbing every upload at once made the registry slow for everyone and, with large
forests, ran it out of descriptors. A refused upload gets 503 with Retry-After before the app
reads a byte of its body, so nothing of it is written.

Refusal alone is unfair: a client that just finished sends its next upload at once and takes
the freed slot, while one that was refused is asleep in its backoff, so under steady load the
same client can be refused until it gives up (the soak saw it). So a refusal hands out a ticket
(a random token, only ever a dictionary key here): sent back in the `ModelDepot-Upload-Ticket`
header it keeps its holder's place, and a freed slot goes to the oldest ticket before any
newcomer. Nothing waits in the server: the line is a list of tickets, each dropped when its
holder does not come back in time, and it is bounded (past `8 x limit` a refusal has no ticket).
The command line sends the ticket back (app/client.py); docs/operations.md describes it.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from app.client import TICKET_HEADER
from app.errors import Overloaded

RETRY_AFTER_SECONDS = 2  # the least Retry-After; more when the line is long
RETRY_AFTER_CAP = 30
# A holder has this long past its Retry-After to come back, since its whole body must arrive
# again before the app sees the ticket; an abandoned place holds a slot no longer than that.
COME_BACK_GRACE = 30.0
LINE_PER_SLOT = 8


class UploadSlots:
    """A counted set of slots, taken without waiting, and a line of tickets for the refused."""

    def __init__(self, limit: int, retry_after: int = RETRY_AFTER_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.retry_after = retry_after
        self.max_line = LINE_PER_SLOT * limit
        self._clock = clock
        self._lock = threading.Lock()
        self._line: OrderedDict[str, float] = OrderedDict()  # ticket -> when its place lapses
        self._mean_hold = float(retry_after)  # seconds a slot is held, a moving average
        self.in_progress = 0
        self.refused = 0  # since start, for tests and logs

    @property
    def waiting(self) -> int:
        with self._lock:
            self._drop_lapsed(self._clock())
            return len(self._line)

    def take(self, ticket: str | None = None) -> float:
        """Take a slot (the time it was taken, for `give_back`), or raise Overloaded (503,
        Retry-After, a ticket when the line has room) when none is free for this caller."""
        with self._lock:
            now = self._clock()
            self._drop_lapsed(now)
            free = self.limit - self.in_progress
            place = self._place_of(ticket)
            if place is None and free > len(self._line):  # no one is waiting for this slot
                self.in_progress += 1
                return now
            if ticket is not None and place is not None and place < free:  # its turn has come
                del self._line[ticket]
                self.in_progress += 1
                return now
            self.refused += 1
            if ticket is None or place is None:
                if len(self._line) >= self.max_line:
                    raise self._refusal(self._wait_for(len(self._line) - free + 1), None, None)
                ticket, place = secrets.token_urlsafe(16), len(self._line)
            wait = self._wait_for(place - free + 1)
            self._line[ticket] = now + wait + COME_BACK_GRACE  # a new place, or kept longer
            raise self._refusal(wait, ticket, place + 1)

    def give_back(self, taken_at: float | None = None) -> None:
        with self._lock:
            if self.in_progress <= 0:
                raise RuntimeError("an upload slot was given back twice")
            self.in_progress -= 1
            if taken_at is not None:
                held = max(0.0, self._clock() - taken_at)
                self._mean_hold += 0.2 * (held - self._mean_hold)

    def _place_of(self, ticket: str | None) -> int | None:
        if ticket is None or ticket not in self._line:
            return None
        return list(self._line).index(ticket)

    def _drop_lapsed(self, now: float) -> None:
        for ticket in [t for t, lapses in self._line.items() if lapses < now]:
            del self._line[ticket]

    def _wait_for(self, ahead: int) -> int:
        """Seconds until about `ahead` slots have been given back, at the usual pace."""
        estimate = math.ceil(self._mean_hold * max(1, ahead) / self.limit)
        return max(self.retry_after, min(RETRY_AFTER_CAP, estimate))

    def _refusal(self, wait: int, ticket: str | None, place: int | None) -> Overloaded:
        busy = (f"The registry is busy: {self.limit} uploads are in progress (setting "
                f"max_uploads_in_progress). Nothing was stored; ")
        if ticket is None:
            return Overloaded(busy + f"{len(self._line)} more are waiting, the most the line "
                              f"holds. Send it again in {wait} s.", retry_after=wait)
        return Overloaded(
            busy + f"you are number {place} in line. Send it again in {wait} s with the header "
            f"{TICKET_HEADER}: {ticket} to keep your place.",
            retry_after=wait, ticket=ticket, place=place)
