"""A small HTTP client for the command line, on the standard library (fast to import).

Uploads stream from disk: the multipart body yields the model file in chunks, so pushing a
1 GB model never holds it in memory.
"""

from __future__ import annotations

import http.client
import json
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote, urlencode, urlsplit

from app.errors import ModelDepotError


class ClientError(ModelDepotError):
    """The server answered with an error, or could not be reached."""


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

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        body: Iterable[bytes] | bytes | None = None,
        headers: dict[str, str] | None = None,
        query: dict[str, Any] | None = None,
        sink: BinaryIO | None = None,
    ) -> Any:
        """Send a request; the JSON answer (or raw bytes), or with `sink` a successful answer
        copied into it in 1 MiB chunks (the bytes written): a bundle may exceed memory."""
        url = urlsplit(self.base_url)
        conn = http.client.HTTPConnection(
            url.hostname or "127.0.0.1", url.port, timeout=self.timeout
        )
        all_headers = {"Accept": "application/json", **(headers or {})}
        if self.token:
            all_headers["Authorization"] = f"Bearer {self.token}"
        if json_body is not None:
            body = json.dumps(json_body).encode()
            all_headers["Content-Type"] = "application/json"
        if query:
            path += "?" + urlencode({k: v for k, v in query.items() if v is not None}, doseq=True)
        try:
            conn.request(method, path, body=body, headers=all_headers)
            response = conn.getresponse()
            if sink is not None and response.status < 400:
                return _copy(response, sink)
            raw = response.read()
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
        finally:
            conn.close()
        content_type = response.getheader("Content-Type", "")
        data = json.loads(raw) if raw and content_type.startswith("application/json") else raw
        if response.status >= 400:
            message = data.get("error") if isinstance(data, dict) else None
            if isinstance(message, dict):
                message = message.get("message")
            error = ClientError(str(message or f"HTTP {response.status}"))
            error.status = response.status
            raise error
        return data

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


def _copy(response: http.client.HTTPResponse, sink: BinaryIO) -> int:
    expected = response.getheader("Content-Length")
    written = 0
    while chunk := response.read(1 << 20):
        sink.write(chunk)
        written += len(chunk)
    if expected is not None and written != int(expected):
        raise http.client.IncompleteRead(b"", int(expected) - written)
    return written
