"""Traffic and the box, read from the inference server over loopback (its /v1/.../traffic and
/v1/resources routes) and drawn; the fragments the page's script fetches to redraw in place."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request
from werkzeug.wrappers import Response

from app.errors import ServiceUnavailable
from app.procmem import resident_bytes
from app.registry.context import registry
from app.registry.dashboard import inference
from app.registry.dashboard.access import cookie_token
from app.registry.dashboard.charts import Chart
from app.registry.dashboard.pictures import box_charts, traffic_charts
from app.registry.dashboard.web import page
from app.store.names import check_name

bp = Blueprint("traffic", __name__)
TIMEOUT = 2.0
MINUTES = 120  # the last two hours on the pages; the JSON route has up to three
MAX_MODELS_ON_STATUS = 6


def _get(path: str) -> Any:
    """A JSON answer from the inference server, or a ServiceUnavailable naming why not."""
    settings = registry().settings
    answer = inference.call(settings.host, settings.inference_port, "GET", path,
                            token=cookie_token(request), timeout=TIMEOUT)
    if not answer.ok:
        raise ServiceUnavailable(answer.message or f"The inference server answered {path} with "
                                 f"HTTP {answer.status}.")
    return answer.body


def model_traffic(name: str) -> tuple[list[Chart], str | None]:
    """(charts, None), or ([], why there are none)."""
    try:
        body = _get(f"/v1/models/{name}/traffic?minutes={MINUTES}")
    except ServiceUnavailable as exc:
        return [], exc.message
    charts = traffic_charts(name, body.get("buckets", []))
    return charts, None if charts else "No predictions recorded since the inference server started."


def status_traffic() -> tuple[list[Chart], str | None]:
    try:
        models = _get("/v1/traffic").get("models", [])
    except ServiceUnavailable as exc:
        return [], exc.message
    charts: list[Chart] = []
    for name in models[:MAX_MODELS_ON_STATUS]:
        charts += model_traffic(name)[0]
    return charts, None if charts else "No predictions recorded since the inference server started."


def box(disk: dict[str, int | None]) -> list[Chart]:
    processes = [("registry", resident_bytes() or 0)]
    cache = None
    try:
        resources = _get("/v1/resources")
    except ServiceUnavailable:
        resources = None
    if isinstance(resources, dict):
        processes.append(("inference server", int(resources.get("resident_bytes") or 0)))
        cache = resources
    return box_charts(disk, processes, cache)


@bp.get("/models/<name>/traffic")
def model_fragment(name: str) -> Response:
    check_name(name)
    charts, note = model_traffic(name)
    return page("_traffic.html", traffic=charts, traffic_note=note)


@bp.get("/status/traffic")
def status_fragment() -> Response:
    charts, note = status_traffic()
    return page("_traffic.html", traffic=charts, traffic_note=note)
