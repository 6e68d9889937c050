"""GET /metrics: the registry's Prometheus text (mirrors: last success, failures, bytes pulled,
versions applied, lag). Read from the mirror rows, so the counters survive restarts."""

from __future__ import annotations

import time

from flask import Response

from app.registry.api import ApiBlueprint
from app.registry.context import registry
from app.store.mirrors import MirrorRecord, MirrorStore

api = ApiBlueprint("metrics", "")
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"

# (name, type, help, value of a mirror; None leaves the sample out)
_MIRROR_METRICS = (
    ("modeldepot_mirror_last_success_timestamp_seconds", "gauge",
     "Unix time of the mirror's last sync that left the box matching its upstream.",
     lambda m, now: m.last_success),
    ("modeldepot_mirror_lag_seconds", "gauge",
     "Seconds since the mirror last matched its upstream.", lambda m, now: m.lag_s(now)),
    ("modeldepot_mirror_failures_total", "counter", "Syncs that failed.",
     lambda m, now: m.failures_total),
    ("modeldepot_mirror_bytes_pulled_total", "counter", "Bytes fetched from the upstream.",
     lambda m, now: m.bytes_pulled),
    ("modeldepot_mirror_versions_applied_total", "counter", "Versions imported by the mirror.",
     lambda m, now: m.versions_applied),
    ("modeldepot_mirror_up", "gauge", "1 when the mirror's last sync succeeded, else 0.",
     lambda m, now: 1 if m.state == "ok" else 0),
)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(mirrors: list[MirrorRecord], now: float) -> str:
    lines: list[str] = []
    for name, kind, text, value_of in _MIRROR_METRICS:
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
        for m in mirrors:
            value = value_of(m, now)
            if value is not None:
                labels = f'mirror="{m.id}",upstream="{_label(m.upstream)}"'
                lines.append(f"{name}{{{labels}}} {float(value)!r}")
    return "\n".join(lines) + "\n"


@api.route("GET", "/metrics", "Prometheus metrics of the registry (mirrors)",
           content_type="text/plain")
def metrics() -> Response:
    text = render(MirrorStore(registry().store.db).all(), time.time())
    return Response(text, content_type=PROMETHEUS_TEXT)
