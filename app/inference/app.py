"""The inference server's FastAPI app factory.

Request path, outermost first: the security gate (middleware.py), the prediction fast path
(fastpath.py), then FastAPI for everything else: health, metadata, metrics and docs. Errors are
JSON everywhere: `{"error": "..."}` under /v2 (its spec), the house shape elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException as StarletteHTTPException

from app import __version__
from app.config import Settings
from app.errors import BadRequest, ModelDepotError, NotFound
from app.inference import docs
from app.inference.cache import ModelCache
from app.inference.fastpath import PredictionRoutes
from app.inference.loaded import Loader, ModelUnavailable
from app.inference.metrics import InferenceMetrics
from app.inference.middleware import (
    ASGIApp,
    Receive,
    Scope,
    SecurityMiddleware,
    Send,
    error_body,
    error_status,
)
from app.inference.traffic import MINUTES, TrafficHistory
from app.inference.watcher import StoreWatcher, open_store
from app.resources import resource_error, unexpected_error
from app.security import SecurityPolicy, api_token
from app.store import Store

log = logging.getLogger(__name__)
SERVER_NAME = "modeldepot"
EXTENSIONS = ["binary_tensor_data"]


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def create_app(settings: Settings, store: Store | None = None, *,
               loader: Loader | None = None) -> InferenceApp:
    """Build the inference app. Without `store`, the data dir's database is opened read-only
    (now, or by the watcher once the registry has created it)."""
    if loader is None:
        from app.formats import load_predictor

        loader = load_predictor
    own_store = store is None
    store = store if store is not None else open_store(settings.paths)
    metrics = InferenceMetrics(settings.home, settings.min_free_disk)
    predict_pool = ThreadPoolExecutor(min(4, os.cpu_count() or 1),
                                      thread_name_prefix="modeldepot-predict")
    cache = ModelCache(settings, store, loader, metrics, predict_pool)
    watcher = StoreWatcher(cache, settings.paths, settings.poll_interval_ms / 1000)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Production aliases load after ready, in the background: with many models a start
        # would otherwise wait for every load (issue 18). A request for a model still loading
        # joins its load (ModelCache.ensure_loaded) instead of failing.
        preload = asyncio.create_task(watcher.check(), name="modeldepot-preload")
        cache.ready = True
        watcher.start(after=preload)
        try:
            yield
        finally:
            preload.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await preload
            await watcher.stop()
            cache.close()
            predict_pool.shutdown(wait=False, cancel_futures=True)
            if own_store and cache.store is not None:
                cache.store.close()

    app = InferenceApp(title="ModelDepot inference", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None,
                  default_response_class=JSON)
    app.state.cache = cache
    app.state.metrics = metrics
    app.state.watcher = watcher
    history = TrafficHistory() if settings.traffic_history else None
    app.state.history = history
    _add_routes(app, cache, metrics)
    _add_traffic_routes(app, cache, history)
    _add_error_handlers(app)
    app.mount("/static", StaticFiles(directory=docs.STATIC_DIR), name="static")

    token = api_token(settings)
    policy = SecurityPolicy(token, settings.effective_auth, settings.allowed_hosts)
    app.front = SecurityMiddleware(
        PredictionRoutes(app.serve_rest, cache, metrics, settings.max_request_bytes, history),
        policy
    )
    return app


class InferenceApp(FastAPI):
    """FastAPI with the security gate and the prediction fast path in front of everything.

    They wrap the application itself rather than sitting in Starlette's middleware stack, so a
    prediction skips the error and exception middlewares as well as routing; the fast path
    answers its own errors, including unexpected ones, as JSON.
    """

    front: ASGIApp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.front(scope, receive, send)

    async def serve_rest(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)


def _add_routes(app: FastAPI, cache: ModelCache, metrics: InferenceMetrics) -> None:
    @app.get("/v2", tags=["v2"], summary="Server metadata")
    async def server_metadata() -> JSON:
        return JSON({"name": SERVER_NAME, "version": __version__, "extensions": EXTENSIONS})

    @app.get("/v2/health/live", tags=["v2"], summary="Server live")
    async def live() -> JSON:
        return JSON({"live": True})

    @app.get("/v2/health/ready", tags=["v2"], summary="Server ready")
    async def ready() -> JSON:
        body: dict[str, Any] = {"ready": cache.ready}
        failures = cache.failures()
        if failures:
            body["failures"] = [{"model": f.model, **f.to_dict()} for f in failures]
        return JSON(body, 200 if cache.ready else 503)

    @app.get("/v2/models/{name}", tags=["v2"], summary="Model metadata")
    @app.get("/v2/models/{name}/versions/{version}", tags=["v2"],
             summary="Model version metadata")
    async def model_metadata(name: str, version: str | None = None) -> JSON:
        model = await cache.get(name, version)
        body = model.metadata()
        failures = cache.failures(name)
        if failures:
            body["failures"] = [f.to_dict() for f in failures]
        return JSON(body)

    @app.get("/v2/models/{name}/ready", tags=["v2"], summary="Model ready")
    @app.get("/v2/models/{name}/versions/{version}/ready", tags=["v2"],
             summary="Model version ready")
    async def model_ready(name: str, version: str | None = None) -> JSON:
        try:
            await cache.get(name, version)
        except ModelUnavailable as exc:
            return JSON({"name": name, "ready": False, "reason": exc.message}, 503)
        return JSON({"name": name, "ready": True})

    @app.get("/v1/models", tags=["v1"], summary="Models in the registry and what is served")
    async def list_models() -> JSON:
        served = {key[0]: m.version for key, m in cache.served().items() if key[1] is None}
        models = [{"name": m.name, "latest_version": m.latest_version, "aliases": m.aliases,
                   "served_version": served.get(m.name)} for m in await cache.list_models()]
        return JSON({"models": models})

    @app.get("/v1/models/{name}", tags=["v1"], summary="What a model takes and gives")
    @app.get("/v1/models/{name}/versions/{version}", tags=["v1"],
             summary="What a model version takes and gives")
    async def describe(name: str, version: str | None = None) -> JSON:
        model = await cache.get(name, version)
        sig = model.signature
        return JSON({
            "model": name, "version": model.version, "format": model.record.format,
            "signature": sig.to_dict() if sig is not None else model.record.signature,
            "outputs": list(model.outputs),
            "engine": model.engine,
            "failures": [f.to_dict() for f in cache.failures(name)],
        })

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi() -> JSON:
        return JSON(docs.openapi_document(app))

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> HTMLResponse:
        return HTMLResponse(docs.swagger_page(app.title))

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return HTMLResponse(docs.redoc_page(app.title))


def _add_traffic_routes(app: FastAPI, cache: ModelCache,
                        history: TrafficHistory | None) -> None:
    """The traffic history (app/inference/traffic.py) and this process's memory, as JSON for
    scripts and for the registry's dashboard."""

    def enabled() -> TrafficHistory:
        if history is None:
            raise NotFound("The traffic history is switched off (setting traffic_history).",
                           code="traffic_history_off")
        return history

    @app.get("/v1/traffic", tags=["v1"], summary="Which models have traffic history")
    async def traffic() -> JSON:
        found = enabled()
        return JSON({**found.summary(), "models": found.models()})

    @app.get("/v1/models/{name}/traffic", tags=["v1"],
             summary="A model's requests, errors and p50/p99 latency per minute")
    async def model_traffic(name: str, minutes: int = MINUTES) -> JSON:
        found = enabled()
        if not 1 <= minutes <= MINUTES:
            raise BadRequest(f"minutes must be between 1 and {MINUTES}.")
        return JSON({"model": name, "bucket_seconds": 60, "buckets": found.history(name, minutes)})

    @app.get("/v1/resources", tags=["ops"], summary="Memory of this process and its models")
    async def resources() -> JSON:
        from app.procmem import resident_bytes

        return JSON({"pid": os.getpid(), "resident_bytes": resident_bytes(), **cache.memory_use()})


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ModelDepotError)
    async def on_error(request: Request, exc: ModelDepotError) -> Response:
        exc = resource_error(exc) or exc
        path = request.url.path
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
        return Response(error_body(path, exc), error_status(path, exc),
                        media_type="application/json", headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> Response:
        error: ModelDepotError
        if exc.status_code == 404:
            error = NotFound("No such route. Predictions are under /v1 and /v2; see /docs.")
        elif exc.status_code == 405:
            error = ModelDepotError(f"Method {request.method} is not allowed on this route.",
                                    code="method_not_allowed")
            error.status = 405
        else:
            error = ModelDepotError(str(exc.detail), code="http_error")
            error.status = exc.status_code
        return await on_error(request, error)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> Response:
        return await on_error(request, BadRequest("The request's parameters are invalid."))

    @app.exception_handler(Exception)
    async def on_crash(request: Request, exc: Exception) -> Response:
        return await on_error(request, unexpected_error(
            exc, "inference server", f"{request.method} {request.url.path}"))
