"""The web dashboard at `/`: server-rendered pages (Jinja2) over the same store and functions as the
JSON API, with its CSS and JS bundled here (no CDN: the machines it runs on have no internet).

Page groups are child blueprints, one module each. Security is the registry's own check (Host,
Origin, token) plus what a browser needs: a session cookie from the token link or the login form
(session.py), and a CSRF token on every form post, checked here before any view runs.
"""

from __future__ import annotations

import logging

from flask import Blueprint, request
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from app.errors import Forbidden, ModelDepotError
from app.registry.dashboard.access import NAME
from app.registry.dashboard.filters import filesize, number, when
from app.resources import resource_error, unexpected_error
from app.security import SAFE_METHODS

log = logging.getLogger(__name__)
# No inline script or style anywhere, so the policy can forbid both: an injected tag does nothing.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


def create_blueprint() -> Blueprint:
    from app.registry.dashboard import (
        auth,
        bundles,
        datasets,
        jobs,
        mirrors,
        models,
        predict,
        status,
        traffic,
        upload,
    )
    from app.registry.dashboard.web import csrf_ok, page

    bp = Blueprint(NAME, __name__, template_folder="templates", static_folder="static",
                   static_url_path="/assets")  # the Flask app itself claims /static
    for child in (auth, models, upload, bundles, datasets, jobs, predict, status, traffic,
                  mirrors):
        bp.register_blueprint(child.bp)

    @bp.before_request
    def check_csrf() -> Response | None:
        if request.method == "GET" and "token" in request.args:
            return auth.follow_token_link()
        if request.method not in SAFE_METHODS and not csrf_ok():
            raise Forbidden(
                "This form is out of date or did not come from this dashboard. Reload the page "
                "and try again.",
                code="csrf_failed",
            )
        return None

    @bp.after_request
    def harden(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", CSP)
        # Not no-referrer (the API's default): with it, browsers send `Origin: null` on form
        # posts, which the Origin check rightly refuses. Same-origin still tells no one else.
        response.headers["Referrer-Policy"] = "same-origin"
        if response.mimetype == "text/html":
            response.headers["Cache-Control"] = "no-store"  # pages carry CSRF tokens
        return response

    @bp.errorhandler(ModelDepotError)
    def on_error(exc: ModelDepotError) -> Response:
        exc = resource_error(exc) or exc
        if exc.status == 401:
            return auth.login_page(exc.message, status=401)
        return page("error.html", exc.status, error=exc.message, code=exc.code)

    @bp.errorhandler(HTTPException)
    def on_http_error(exc: HTTPException) -> Response:
        return page("error.html", exc.code or 500, error=exc.description, code="http_error")

    @bp.errorhandler(Exception)
    def on_crash(exc: Exception) -> Response:
        return on_error(unexpected_error(exc, "registry", f"{request.method} {request.path}"))

    bp.add_app_template_filter(filesize)
    bp.add_app_template_filter(when)
    bp.add_app_template_filter(number)
    return bp
