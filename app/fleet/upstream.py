"""Where a mirror's models come from: "what to fetch" kept apart from "import and move alias".

An `Upstream` answers two questions: what does it publish now for these `name@ref`s (a bundle
manifest and its signature, or "unchanged" for a conditional request), and the bytes of one file
by its digest (resumable). Everything after that (signature policy, inspection, the commit, the
alias move) is the one import path, app/fleet/importer.py, whatever the upstream.
`ModelDepotUpstream` speaks to another ModelDepot's /bundles/manifest and /blobs routes;
`MlflowUpstream` (app/fleet/mlflow_upstream.py) to an MLflow Model Registry (`mlflow+http://`,
docs/mirrors.md).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import http.client
import io
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from urllib.parse import quote, urlencode, urlsplit

from app.client import Answer, Sink, Writer, exchange
from app.errors import BadRequest, ModelDepotError
from app.fleet.manifest import MAX_MANIFEST_BYTES

TIMEOUT = 30.0  # seconds without a byte before a request is given up (a socket timeout)
MLFLOW_SCHEMES = ("mlflow+http", "mlflow+https")
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
# A reverse proxy's path prefix: plain segments, none of them "." or ".."
_PREFIX = re.compile(r"(/(?!\.\.?(?:/|$))[A-Za-z0-9._~-]+)+")


class UpstreamError(ModelDepotError):
    """The upstream could not be reached, or answered with something unusable."""

    status = 502
    code = "upstream_error"


@dataclass(frozen=True)
class Published:
    """What an upstream publishes for a mirror's refs: a manifest, its signature and its ETag."""

    etag: str | None
    manifest: bytes
    signature: bytes | None
    kind: str = "mirror"  # the imported versions' origin kind: mirror, mlflow
    # More origin fields of a version, by "model@version" of the manifest: what the upstream
    # alone knows (an MLflow run id), never taken from the manifest's bytes.
    origins: dict[str, dict[str, Any]] = field(default_factory=dict)


class Upstream(Protocol):
    url: str
    pulled: int  # bytes of model files this object brought over the network (a cut one too)

    def resolve(self, refs: list[str], etag: str | None) -> Published | None:
        """The current manifest, or None when it still has the ETag `etag` (nothing changed)."""
        ...

    def fetch(self, sha256: str, size: int, part: Path) -> None:
        """Bring the file into `part`, resuming from the bytes already there (a cut transfer
        leaves what arrived in `part`). Raises UpstreamError."""
        ...

    def close(self) -> None:
        """Remove whatever the upstream kept for this sync (a packed MLflow model)."""
        ...


def is_mlflow(url: str) -> bool:
    return urlsplit(url.strip()).scheme in MLFLOW_SCHEMES


def check_upstream_url(url: str) -> str:
    """`http(s)://host[:port]` (another ModelDepot), nothing else: no path, query, user or
    password; or `mlflow+http(s)://host[:port][/prefix]` (an MLflow server, maybe behind a
    reverse proxy under a path prefix)."""
    parts = urlsplit(url.strip())
    mlflow = parts.scheme in MLFLOW_SCHEMES
    if parts.scheme not in ("http", "https", *MLFLOW_SCHEMES) or not parts.hostname:
        raise BadRequest(f"Field 'upstream' must be http://host:port or https://host:port (a "
                         f"ModelDepot), or mlflow+http://host:port (an MLflow server), not "
                         f"{url[:80]!r}.", code="invalid_upstream")
    prefix = parts.path.rstrip("/")
    if (prefix and not (mlflow and _PREFIX.fullmatch(prefix))) or parts.query or \
            parts.fragment or parts.username or parts.password:
        raise BadRequest("Field 'upstream' takes only the scheme, host and port of the upstream "
                         "(no query or user; a path prefix only for an MLflow server): "
                         f"{url[:80]!r}.", code="invalid_upstream")
    try:
        port = parts.port
    except ValueError as exc:
        raise BadRequest(f"Field 'upstream' has a bad port: {url[:80]!r}.",
                         code="invalid_upstream") from exc
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "") + prefix


class CappedSink:
    """A writer that refuses to grow past `limit` bytes: an upstream cannot fill the disk by
    sending more than the manifest said."""

    def __init__(self, target: Writer, limit: int, what: str,
                 counted: Callable[[int], None] | None = None) -> None:
        self.target, self.left, self.what, self.counted = target, limit, what, counted

    def write(self, data: bytes, /) -> int:
        self.left -= len(data)
        if self.left < 0:
            raise UpstreamError(f"The upstream sent more bytes than expected for {self.what}.")
        if self.counted is not None:
            self.counted(len(data))
        return self.target.write(data)


class ModelDepotUpstream:
    """Another ModelDepot registry (the central box)."""

    def __init__(self, url: str, token: str | None, timeout: float = TIMEOUT) -> None:
        self.url = check_upstream_url(url)
        self.token = token
        self.timeout = timeout
        self.pulled = 0
        parts = urlsplit(self.url)
        self._host = parts.hostname or ""
        self._port = parts.port
        self._tls = parts.scheme == "https"

    def _get(self, path: str, headers: dict[str, str], sink: Sink) -> Answer:
        all_headers = dict(headers)
        if self.token:
            all_headers["Authorization"] = f"Bearer {self.token}"
        try:
            return exchange(self._host, self._port, "GET", path, headers=all_headers,
                            timeout=self.timeout, sink=sink, tls=self._tls, limit=64 << 10)
        except http.client.HTTPException as exc:
            raise UpstreamError(f"The upstream {self.url} broke off its answer to GET "
                                f"{path.split('?')[0]} ({type(exc).__name__}).") from exc
        except OSError as exc:
            raise UpstreamError(f"The upstream {self.url} could not be reached "
                                f"({exc.strerror or exc}).") from exc

    def _refused(self, answer: Answer, what: str) -> UpstreamError:
        return UpstreamError(f"The upstream {self.url} refused {what} with HTTP {answer.status}: "
                             f"{answer.message}")

    def resolve(self, refs: list[str], etag: str | None) -> Published | None:
        path = "/api/v1/bundles/manifest?" + urlencode({"model": refs}, doseq=True)
        headers = {"Accept": "application/json"}
        if etag:
            headers["If-None-Match"] = etag
        buffer = io.BytesIO()
        answer = self._get(path, headers, CappedSink(buffer, MAX_MANIFEST_BYTES, "the manifest"))
        if answer.status == 304:
            return None
        if answer.status != 200 or answer.headers is None:
            raise self._refused(answer, "the manifest")
        encoded = answer.headers.get("X-ModelDepot-Signature")
        signature = None
        if encoded:
            try:
                signature = base64.b64decode(encoded, validate=True)
            except binascii.Error as exc:
                raise UpstreamError(f"The upstream {self.url} sent a signature header that is "
                                    "not base64.") from exc
        return Published(answer.headers.get("ETag"), buffer.getvalue(), signature)

    def fetch(self, sha256: str, size: int, part: Path) -> None:
        have = part.stat().st_size if part.exists() else 0
        if have > size:  # not this file's prefix: start over
            part.unlink()
            have = 0
        if have == size:
            return
        headers = {"Accept": "application/octet-stream"}
        if have:
            # If-Range: the ETag is the digest, so a server with this file answers the rest.
            headers.update({"Range": f"bytes={have}-", "If-Range": f'"{sha256}"'})
        what = f"the file {sha256[:12]}..."
        opened: list[BinaryIO] = []
        with contextlib.ExitStack() as files:

            def choose(status: int, answer_headers: http.client.HTTPMessage) -> Writer:
                if status == 206:
                    match = _CONTENT_RANGE.fullmatch(answer_headers.get("Content-Range", ""))
                    if match is None or int(match.group(1)) != have:
                        raise UpstreamError(f"The upstream {self.url} answered a resume of "
                                            f"{what} with another range.")
                    opened.append(files.enter_context(part.open("ab")))
                    return CappedSink(opened[-1], size - have, what, self._count)
                opened.append(files.enter_context(part.open("wb")))
                return CappedSink(opened[-1], size, what, self._count)

            answer = self._get(f"/api/v1/blobs/{quote(sha256)}", headers, choose)
            for f in opened:  # the commit renames it into the blob store: durable first
                f.flush()
                os.fsync(f.fileno())
        if answer.status not in (200, 206):
            raise self._refused(answer, what)

    def _count(self, size: int) -> None:
        self.pulled += size

    def close(self) -> None:
        pass  # parts live in the mirror's folder (app/fleet/mirror.py), for the next attempt
