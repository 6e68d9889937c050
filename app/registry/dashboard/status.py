"""Server status: both servers' health and versions, the data dir and its disk use, API links."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request
from werkzeug.wrappers import Response

from app import __version__
from app.diskspace import disk_use
from app.errors import ServiceUnavailable
from app.registry.context import registry
from app.registry.dashboard import inference
from app.registry.dashboard.access import cookie_token
from app.registry.dashboard.traffic import box, status_traffic
from app.registry.dashboard.web import page

bp = Blueprint("status", __name__)
PROBE_TIMEOUT = 2.0


def browser_host() -> str:
    """The host name the browser used for us (checked by the security policy), for links to the
    inference server beside us: 127.0.0.1 stays 127.0.0.1, localhost stays localhost."""
    host = request.host
    if host.startswith("["):
        return host[: host.index("]") + 1]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def inference_report() -> dict[str, Any]:
    settings = registry().settings
    report: dict[str, Any] = {"port": settings.inference_port, "answering": False,
                              "ready": False, "version": None, "failures": [], "error": None}
    try:
        about = inference.call(settings.host, settings.inference_port, "GET", "/v2",
                               token=cookie_token(request), timeout=PROBE_TIMEOUT)
        ready = inference.call(settings.host, settings.inference_port, "GET", "/v2/health/ready",
                               timeout=PROBE_TIMEOUT)
    except ServiceUnavailable as exc:
        report["error"] = exc.message
        return report
    report["answering"] = True
    if about.ok and isinstance(about.body, dict):
        report["version"] = about.body.get("version")
    elif not about.ok:
        report["error"] = about.message
    body = ready.body if isinstance(ready.body, dict) else {}
    report["ready"] = ready.ok and bool(body.get("ready"))
    report["failures"] = [f for f in body.get("failures", []) if isinstance(f, dict)]
    return report


@bp.get("/status")
def show() -> Response:
    reg = registry()
    settings = reg.settings
    base = f"http://{browser_host()}:{settings.inference_port}"
    disk = disk_use(settings.home, settings.min_free_disk)
    traffic, traffic_note = status_traffic()
    return page(
        "status.html",
        registry_info={
            "version": __version__,
            "port": settings.registry_port,
            "auth": reg.policy.auth,
            "revision": reg.store.revision(),
        },
        inference_info=inference_report(),
        data_dir=str(settings.home),
        disk=disk,
        box=box(disk),
        traffic=traffic,
        traffic_note=traffic_note,
        links={
            "Inference API docs (Swagger UI)": f"{base}/docs",
            "Inference API reference (ReDoc)": f"{base}/redoc",
            "Inference metrics (Prometheus)": f"{base}/metrics",
            "Registry OpenAPI document": "/api/v1/openapi.json",
            "Registry health": "/api/v1/health",
        },
        nav="status",
    )

