"""The registry's Flask app factory: security before routing, JSON errors for everything."""

from __future__ import annotations

import logging

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException

from app import __version__
from app.client import PLACE_HEADER, TICKET_HEADER
from app.config import Settings
from app.errors import ModelDepotError, Overloaded
from app.registry import (
    blobs_api,
    bundles_api,
    dashboard,
    metrics_api,
    mirrors_api,
    models_api,
    versions_api,
)
from app.registry.admission import UploadSlots
from app.registry.api import ApiBlueprint, json_response, openapi_document
from app.registry.context import Registry
from app.registry.dashboard.access import cookie_token, is_public
from app.registry.datasets_api import api as datasets_routes
from app.registry.jobs_api import api as jobs_routes
from app.registry.schemas import Health
from app.resources import resource_error, unexpected_error
from app.security import SecurityPolicy, api_token
from app.store import Store
from app.training.runner import JobRunner

log = logging.getLogger(__name__)
PUBLIC_PATHS = frozenset({"/api/v1/health", "/api/v1/openapi.json"})
system = ApiBlueprint("system", "/api/v1")


@system.route("GET", "/health", "Is the registry up (never needs the token)", response=Health)
def health() -> Response:
    return json_response({"status": "ok", "version": __version__})


@system.route("GET", "/openapi.json", "This API's OpenAPI document")
def openapi() -> Response:
    return json_response(current_app.extensions["openapi"])


BLUEPRINTS = [system, models_api.api, versions_api.api, datasets_routes, jobs_routes,
              bundles_api.api, blobs_api.api, mirrors_api.api,
              metrics_api.api]

_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def create_app(settings: Settings, store: Store | None = None) -> Flask:
    """Build the registry. Tests pass their own settings with a temporary data dir."""
    app = Flask("app.registry")
    app.config["MAX_CONTENT_LENGTH"] = None  # uploads enforce their own limit while streaming
    store = store or Store(settings.paths)
    token = api_token(settings)
    policy = SecurityPolicy(token, settings.effective_auth, settings.allowed_hosts)
    # Jobs run on a spawn process pool, built on first use; serve_registry resumes old jobs.
    runner = JobRunner(app, store, settings)
    uploads = UploadSlots(settings.max_uploads_in_progress)
    app.extensions["modeldepot"] = Registry(settings, store, policy, runner, uploads)
    mirrors_api.create_loop(app)  # started by serve_registry, not by tests' in-thread apps

    @app.before_request
    def check_security() -> None:
        policy.check(
            request.method,
            request.headers,
            public=request.path in PUBLIC_PATHS or is_public(request),
            cookie_token=cookie_token(request),
        )

    @app.after_request
    def harden(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    @app.errorhandler(ModelDepotError)
    def on_error(exc: ModelDepotError) -> Response:
        exc = resource_error(exc) or exc  # never blame the client for the OS's shortage
        response = json_response(exc.to_dict(), exc.status)
        if exc.retry_after is not None:
            response.headers["Retry-After"] = str(exc.retry_after)
        if isinstance(exc, Overloaded) and exc.ticket is not None:
            response.headers[TICKET_HEADER] = exc.ticket
            response.headers[PLACE_HEADER] = str(exc.place)
        return response

    @app.errorhandler(HTTPException)
    def on_http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        code = _HTTP_CODES.get(status, "http_error")
        message = {
            404: "No such route. The API lives under /api/v1; see /api/v1/openapi.json.",
            405: f"Method {request.method} is not allowed on this route.",
        }.get(status, exc.description or "The request could not be handled.")
        return json_response({"error": {"code": code, "message": message}}, status)

    @app.errorhandler(Exception)
    def on_crash(exc: Exception) -> Response:
        return on_error(unexpected_error(exc, "registry", f"{request.method} {request.path}"))

    app.extensions["openapi"] = openapi_document("ModelDepot registry", __version__, BLUEPRINTS)
    for api in BLUEPRINTS:
        app.register_blueprint(api.blueprint)
    app.register_blueprint(dashboard.create_blueprint())
    return app
