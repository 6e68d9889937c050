"""Health probes over plain HTTP/1.1 on a socket.

A probe never raises: a refused connection, a timeout or a 5xx all mean "not healthy", and the
watch loop decides what that means for the child.

Why a socket and not http.client: the supervisor lives as long as the box is up, and
http.client brings ssl and the email parser with it (about 3.5 MB of resident memory, measured
with benchmarks/bench_startup.py) for a GET on the loopback whose answer is a few bytes of JSON.
Both servers answer these paths with a Content-Length; the request says `Connection: close`, so
reading to the end of the stream is also correct.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from typing import Any

from app.net import url_host

LIMIT = 64 << 10  # a health answer is tiny; more than this is not a health answer


@dataclass(frozen=True)
class Probe:
    status: int | None  # None: no HTTP answer at all
    body: Any = None

    @property
    def ok(self) -> bool:
        return self.status == 200


def probe(host: str, port: int, path: str, timeout: float = 1.0) -> Probe:
    """GET `path` and return the status code and the JSON body (if any)."""
    try:
        raw = _get(url_host(host).strip("[]"), port, path, timeout)
    except OSError:
        return Probe(None)
    return parse_answer(raw)


def _get(host: str, port: int, path: str, timeout: float) -> bytes:
    request = (f"GET {path} HTTP/1.1\r\nHost: {url_host(host)}:{port}\r\n"
               "Accept: application/json\r\nConnection: close\r\n\r\n").encode("latin-1")
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks: list[bytes] = []
        size = 0
        while size <= LIMIT:
            chunk = sock.recv(16 << 10)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if _complete(b"".join(chunks)):
                break
    return b"".join(chunks)


def _complete(raw: bytes) -> bool:
    """Whether `raw` holds the whole answer its Content-Length announces."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        return False
    length = _headers(head).get("content-length")
    return length is not None and length.isdigit() and len(body) >= int(length)


def _headers(head: bytes) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in head.split(b"\r\n")[1:]:
        name, colon, value = line.partition(b":")
        if colon:
            fields[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    return fields


def parse_answer(raw: bytes) -> Probe:
    """The status and JSON body of a raw HTTP/1.x answer; Probe(None) if it is not one."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split()
    if not sep or len(status_line) < 2 or not status_line[0].startswith(b"HTTP/1.") or \
            not status_line[1].isdigit() or len(status_line[1]) != 3:
        return Probe(None)
    status = int(status_line[1])
    headers = _headers(head)
    length = headers.get("content-length")
    if length is not None and length.isdigit():
        if len(body) < int(length):
            return Probe(status)  # cut short: the status stands, the body is not read
        body = body[:int(length)]
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        return Probe(status)  # neither server chunks these answers; a status is all a probe needs
    if not body or not headers.get("content-type", "").startswith("application/json"):
        return Probe(status)
    try:
        return Probe(status, json.loads(body))
    except ValueError:
        return Probe(status)
