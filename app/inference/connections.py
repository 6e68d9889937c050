"""Connections that cannot outstay their welcome: a flood of idle or slow clients is shed.

uvicorn closes a keep-alive connection that stays idle between requests, but it sets no clock on
a connection that never sends a request, nor on one that drips its request a byte at a time:
thousands of those would hold descriptors and memory for ever. With this protocol a client has
`request_timeout_s` (uvicorn's keep-alive timeout, set from that setting by server.py) from the
moment it connects, or from the first byte of a later request, to deliver the whole request,
headers and body; past it the connection is closed.

A slow client never holds anyone else up meanwhile: the event loop serves other connections,
and a prediction joins a batch only once its whole body is in (fastpath.py reads it first).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)


class DeadlineHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline on receiving each request whole."""

    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:  # a later request on a kept-alive connection
            self._arm()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._deadline = self.loop.call_later(self.timeout_keep_alive, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            log.debug("closing a connection that sent no whole request within %s s",
                      self.timeout_keep_alive)
            self.transport.close()


def http_protocol() -> Any:
    """The protocol class for uvicorn: ours over httptools where it is installed, else h11
    (pure Python, no deadline beyond uvicorn's keep-alive timeout)."""
    import importlib.util

    if importlib.util.find_spec("httptools") is None:
        return "h11"
    return DeadlineHttpToolsProtocol
