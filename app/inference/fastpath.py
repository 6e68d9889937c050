"""The prediction routes as a raw ASGI layer in front of FastAPI.

FastAPI's routing, dependency solving and response classes cost on the order of 0.1 ms a
request, as much as a LogisticRegression predict. These two routes are the server's reason to
exist, so they skip all that: match the path by splitting it, read the body, parse it with orjson,
look the model up in a dict, batch, answer with orjson bytes. Every other path goes on to FastAPI
(docs, metadata, health, metrics). The routes still appear in the OpenAPI document (docs.py).

    POST /v1/models/{name}[/versions/{version}]/predict
    POST /v2/models/{name}[/versions/{version}]/infer
"""

from __future__ import annotations

import json
import logging
import time

import orjson

from app.errors import BadRequest, ModelDepotError, PayloadTooLarge, UnsupportedMediaType
from app.inference.cache import ModelCache
from app.inference.codecs import decode_v1, decode_v2, encode_v1, encode_v2
from app.inference.inputs import InputError
from app.inference.metrics import InferenceMetrics
from app.inference.middleware import (
    ASGIApp,
    Receive,
    Scope,
    Send,
    headers_of,
    route_of,
    send_body,
    send_error,
)
from app.inference.traffic import TrafficHistory
from app.resources import resource_error, unexpected_error

log = logging.getLogger(__name__)
_HEADER_LENGTH = "inference-header-content-length"
_HEADER_LENGTH_BYTES = _HEADER_LENGTH.encode()


class ClientGone(Exception):
    pass


class PredictionRoutes:
    def __init__(self, app: ASGIApp, cache: ModelCache, metrics: InferenceMetrics,
                 max_request_bytes: int, history: TrafficHistory | None = None) -> None:
        self.app = app
        self.cache = cache
        self.metrics = metrics
        self.max_bytes = max_request_bytes
        self.history = history

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = route_of(scope) if scope["type"] == "http" else None
        if route is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        protocol, name, ref = route
        started = time.perf_counter()
        try:
            await self._answer(protocol, name, ref, scope, receive, send, started)
        except ClientGone:
            return
        except ModelDepotError as exc:
            exc = resource_error(exc) or exc
            self._failed(protocol, name, ref, exc.status)
            await send_error(send, scope["path"], exc)
        except Exception as exc:
            error = unexpected_error(exc, "inference server", f"prediction on {scope['path']}")
            self._failed(protocol, name, ref, error.status)
            await send_error(send, scope["path"], error)

    def _failed(self, protocol: str, name: str, ref: str | None, status: int) -> None:
        self.metrics.error(protocol, status)
        # Only models the server knows: a made-up name must not take a place in the history.
        if self.history is not None and (self.history.knows(name) or
                                         self.cache.holds(name, ref)):
            self.history.failed(name)

    async def _answer(self, protocol: str, name: str, ref: str | None, scope: Scope,
                      receive: Receive, send: Send, started: float) -> None:
        headers = headers_of(scope)
        header_length = headers.get(_HEADER_LENGTH) if protocol == "v2" else None
        _check_content_type(headers, binary=header_length is not None)
        body = await self._read_body(headers, receive)
        model = self.cache.lookup(name, ref) or await self.cache.get(name, ref)
        if protocol == "v1":
            X, proba = decode_v1(_parse_json(body), model.spec)
            if proba and not model.has_proba:
                raise InputError(f"Model {name!r} version {model.version} gives no probabilities "
                                 "(it has no predict_proba); leave out proba.")
            predictions, probabilities = await model.batcher.predict(X, proba)
            payload = encode_v1(name, model.version, predictions, probabilities)
            extra = None
        else:
            json_part, binary = _split_binary(body, header_length)
            request = decode_v2(_parse_json(json_part), binary, model.spec, model.outputs)
            proba = "predict_proba" in request.outputs
            predictions, probabilities = await model.batcher.predict(request.matrix, proba)
            results = {"predict": predictions}
            if probabilities is not None:
                results["predict_proba"] = probabilities
            payload, json_size = encode_v2(name, model.version, request, results)
            extra = None if json_size is None else \
                [(_HEADER_LENGTH_BYTES, str(json_size).encode())]
        elapsed = time.perf_counter() - started
        model.metrics.observe(protocol, elapsed)
        if self.history is not None:
            self.history.served(name, elapsed)
        content_type = b"application/json" if extra is None else b"application/octet-stream"
        await send_body(send, 200, payload, content_type, extra)

    async def _read_body(self, headers: dict[str, str], receive: Receive) -> bytes:
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            raise _too_large(self.max_bytes)
        if headers.get("content-encoding", "identity") != "identity":
            raise UnsupportedMediaType("Compressed request bodies are not accepted; send plain "
                                       "JSON.")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                raise _too_large(self.max_bytes)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The request body is larger than {limit} bytes (setting "
                           "max_request_bytes). Split the request.")


def _check_content_type(headers: dict[str, str], binary: bool) -> None:
    content_type = headers.get("content-type")
    if content_type is None or content_type == "application/json":
        return
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/json" or (binary and media == "application/octet-stream"):
        return
    raise UnsupportedMediaType(f"Send the body as application/json, not {media[:60]!r}.")


def _parse_json(body: bytes) -> object:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    # orjson refuses numbers a float64 cannot hold (1e400) and integers past 64 bits, which JSON
    # allows: read them (as inf, or as Python ints) so the input check names the cell. Only on
    # this error path; NaN and Infinity, which JSON does not allow, stay refused.
    try:
        return json.loads(body, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise BadRequest("The body is not valid JSON (or holds NaN or Infinity, which JSON "
                         "cannot carry).", code="invalid_json") from None


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _split_binary(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """Triton's binary tensor extension: a JSON header of the given length, then raw tensors."""
    if header_length is None:
        return body, b""
    if not header_length.isdigit() or int(header_length) > len(body):
        raise BadRequest("Inference-Header-Content-Length does not fit the body.")
    n = int(header_length)
    return body[:n], body[n:]
