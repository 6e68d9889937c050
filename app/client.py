"""The one HTTP client: the command line, the dashboard's calls to the inference server and the
supervisor's health probes all speak through `exchange`, on the standard library (fast to import).

Uploads stream from disk: the multipart body yields the model file in chunks, so pushing a
1 GB model never holds it in memory.

A busy registry refuses an upload with 503 and Retry-After before doing anything with it
(app/registry/admission.py); the client then waits (at least what the server asked, doubling,
with random jitter so many clients do not come back in step) and sends it again. A refusal that
gives a place in line (a ticket) is different: the client comes back when the server says, with
the ticket, for up to QUEUE_PATIENCE seconds, and is served in its turn.
"""

from __future__ import annotations

import http.client
import json
import random
import secrets
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from urllib.parse import quote, urlencode, urlsplit

from app.errors import ModelDepotError

RETRIES = 8  # refusals in a row before giving up: about two minutes of waiting in all
QUEUE_PATIENCE = 900.0  # seconds a request with a place in line waits for its turn
# A refused upload's place in line, and its number (app/registry/admission.py).
TICKET_HEADER, PLACE_HEADER = "ModelDepot-Upload-Ticket", "ModelDepot-Upload-Place"
BACKOFF_BASE, BACKOFF_CAP = 1.0, 30.0


class ClientError(ModelDepotError):
    """The server answered with an error, or could not be reached."""


def retry_delay(attempt: int, retry_after: float | None) -> float:
    """Seconds to wait before sending a refused request again (attempt counts from 0)."""
    backoff = min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt)
    delay: float = max(backoff, retry_after or 0.0) * random.uniform(1.0, 1.5)
    return delay


def _retry_after(response: http.client.HTTPResponse) -> float | None:
    """The Retry-After of a 503 (seconds), or None when the answer is not a retryable refusal."""
    if response.status != 503:
        return None
    value = response.getheader("Retry-After")
    if value is None:
        return None
    try:
        return min(BACKOFF_CAP, max(0.0, float(value)))
    except ValueError:
        return None


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any  # parsed JSON when the server said application/json, else the raw bytes
    retry_after: float | None = None  # a 503's Retry-After in seconds (capped), else None
    headers: http.client.HTTPMessage | None = None  # the answer's headers (ETag, Content-Range)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def ticket(self) -> str | None:
        """The place in line a refused upload was given, to send back with it."""
        ticket = self.headers.get(TICKET_HEADER) if self.headers is not None else None
        return ticket if ticket and len(ticket) <= 64 else None

    @property
    def ticket_place(self) -> str:
        place = self.headers.get(PLACE_HEADER) if self.headers is not None else None
        return place if place and place.isdigit() else "?"

    @property
    def message(self) -> str:
        """The server's own error sentence, from either error shape (registry and /v1 nested,
        /v2 flat), or a plain one naming the status."""
        error = self.body.get("error") if isinstance(self.body, dict) else None
        if isinstance(error, dict):
            error = error.get("message")
        if isinstance(error, str) and error:
            return error
        return f"The server answered HTTP {self.status}."


class Writer(Protocol):
    def write(self, data: bytes, /) -> int: ...


# Where a successful answer's body goes: a file, or a function choosing one from the status and
# headers (a resumed download appends on 206 and starts over on 200).
Sink = BinaryIO | Writer | Callable[[int, http.client.HTTPMessage], Writer]


def exchange(host: str, port: int | None, method: str, path: str, *,
             body: Iterable[bytes] | bytes | None = None, headers: dict[str, str] | None = None,
             timeout: float, limit: int | None = None, sink: Sink | None = None,
             tls: bool = False) -> Answer:
    """One request on a fresh connection (HTTPS with `tls`). Raises OSError (no answer, timeout)
    and http.client.HTTPException (a broken answer, a body cut short) for the caller to name;
    reads at most `limit` bytes of the body (None: all), and a body cut there is not parsed.
    With `sink`, a successful answer's body is copied into it instead, and the Answer's body is
    the bytes written."""
    kind = http.client.HTTPSConnection if tls else http.client.HTTPConnection
    conn = kind(host.strip("[]"), port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers={"Connection": "close", **(headers or {})})
        response = conn.getresponse()
        if sink is not None and response.status < 400:
            target = sink if not callable(sink) else sink(response.status, response.headers)
            return Answer(response.status, _copy(response, target), headers=response.headers)
        raw = response.read() if limit is None else response.read(limit + 1)
    finally:
        conn.close()
    parsed: Any = raw
    is_json = (response.getheader("Content-Type") or "").startswith("application/json")
    if raw and is_json and (limit is None or len(raw) <= limit):
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = raw
    elif not raw:
        parsed = None
    return Answer(response.status, parsed, _retry_after(response), response.headers)


def _notice(message: str) -> None:
    print(f"modeldepot: {message}", file=sys.stderr)


class MultipartBody:
    """A multipart/form-data body over fields and one file, produced in 1 MiB chunks.

    An iterable rather than a file object: http.client sends an iterable chunk by chunk, where a
    file object is read 8 KiB at a time.
    """

    def __init__(self, fields: dict[str, str], file_field: str, path: Path, filename: str) -> None:
        self.boundary = "modeldepot-" + secrets.token_hex(12)
        head = b"".join(
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value.encode()
            + b"\r\n"
            for name, value in fields.items()
        )
        safe_name = filename.replace('"', "_").replace("\r", "_").replace("\n", "_")
        head += (
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="{file_field}"; '
            f'filename="{safe_name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        self._head, self._path = head, path
        self._tail = f"\r\n--{self.boundary}--\r\n".encode()
        self.length = len(head) + path.stat().st_size + len(self._tail)

    def __iter__(self) -> Iterator[bytes]:
        yield self._head
        with self._path.open("rb") as f:
            while chunk := f.read(1 << 20):
                yield chunk
        yield self._tail

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"


@dataclass
class Client:
    base_url: str
    token: str | None = None
    timeout: float = 600.0
    notice: Callable[[str], None] = _notice  # tells the user about a wait before a retry
    retries: int = RETRIES  # a loop with its own backoff (the mirror) sends once: 0

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send a request; the JSON answer (or raw bytes), or with `sink` a successful answer
        copied into it in 1 MiB chunks (the bytes written): a bundle may exceed memory."""
        answer = self.answer(method, path, **kwargs)
        return answer.body if answer.body is not None else b""

    def answer(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        body: Iterable[bytes] | bytes | None = None,
        headers: dict[str, str] | None = None,
        query: dict[str, Any] | None = None,
        sink: Sink | None = None,
    ) -> Answer:
        """Send a request (again after a 503 with Retry-After, up to `retries` times); the whole
        Answer (status, body, headers). An error status raises ClientError with its message."""
        all_headers = {"Accept": "application/json", **(headers or {})}
        if self.token:
            all_headers["Authorization"] = f"Bearer {self.token}"
        if json_body is not None:
            body = json.dumps(json_body).encode()
            all_headers["Content-Type"] = "application/json"
        if query:
            path += "?" + urlencode({k: v for k, v in query.items() if v is not None}, doseq=True)
        # A refusal can be answered by sending the same body again only if it can be re-read.
        resendable = body is None or isinstance(body, bytes | MultipartBody)
        attempt, waited_in_line = 0, 0.0
        while True:
            answer = self._send(method, path, body, all_headers, sink)
            if answer.retry_after is None or not resendable or self.retries == 0:
                break
            ticket = answer.ticket
            if ticket is not None and waited_in_line < QUEUE_PATIENCE:
                # A place in line: come back when the server says, neither sooner nor later.
                delay = answer.retry_after * random.uniform(1.0, 1.2)
                waited_in_line += delay
                all_headers[TICKET_HEADER] = ticket
                place = f" (number {answer.ticket_place} in line)"
            elif attempt < self.retries:
                delay, place = retry_delay(attempt, answer.retry_after), ""
                attempt += 1
            else:
                break
            self.notice(f"the server is busy{place}; sending {method} {path.split('?')[0]} "
                        f"again in {delay:.1f} s")
            time.sleep(delay)
        if answer.status >= 400:
            error = ClientError(answer.message)
            error.status = answer.status
            raise error
        return answer

    def _send(self, method: str, path: str, body: Iterable[bytes] | bytes | None,
              headers: dict[str, str], sink: Sink | None = None) -> Answer:
        url = urlsplit(self.base_url)
        try:
            return exchange(url.hostname or "127.0.0.1", url.port, method, path, body=body,
                            headers=headers, timeout=self.timeout, sink=sink,
                            tls=url.scheme == "https")
        except http.client.HTTPException as exc:  # e.g. the server died mid-answer
            raise ClientError(
                f"ModelDepot at {self.base_url} broke off its answer ({type(exc).__name__}). "
                "Check `modeldepot status`; a write may or may not have happened."
            ) from exc
        except OSError as exc:
            raise ClientError(
                f"Could not reach ModelDepot at {self.base_url} ({exc}). Is it running? "
                "Start it with `modeldepot serve`."
            ) from exc

    def upload(self, model: str, path: Path, metadata: dict[str, Any]) -> Any:
        body = MultipartBody({"metadata": json.dumps(metadata)}, "file", path, path.name)
        return self.request(
            "POST",
            f"/api/v1/models/{quote(model, safe='')}/versions",
            body=body,
            headers={"Content-Type": body.content_type, "Content-Length": str(body.length)},
        )

    def upload_dataset(self, path: Path, name: str | None = None) -> Any:
        """Stream a CSV to POST /datasets; the answer is the dataset (new or already stored)."""
        body = MultipartBody({"name": name} if name else {}, "file", path, path.name)
        return self.request(
            "POST",
            "/api/v1/datasets",
            body=body,
            headers={"Content-Type": body.content_type, "Content-Length": str(body.length)},
        )


def _copy(response: http.client.HTTPResponse, sink: Writer) -> int:
    expected = response.getheader("Content-Length")
    written = 0
    while chunk := response.read(1 << 20):
        sink.write(chunk)
        written += len(chunk)
    if expected is not None and written != int(expected):
        raise http.client.IncompleteRead(b"", int(expected) - written)
    return written
