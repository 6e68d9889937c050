"""`modeldepot status`: is it running, where, are both servers answering, how much disk it uses.

Exit codes follow `systemctl status`: 0 running and healthy, 1 running but degraded, 3 not running.
"""

from __future__ import annotations

import json
from typing import Any

from app import __version__
from app.config import Settings
from app.diskspace import disk_use, size_text
from app.supervisor.children import CHILDREN
from app.supervisor.discovery import read_server_file
from app.supervisor.health import probe
from app.supervisor.lock import holder

NOT_RUNNING = 3
VERSION_PATHS = {"registry": "/api/v1/health", "inference": "/v2"}


def run_status(settings: Settings, as_json: bool = False) -> int:
    report = collect_status(settings)
    if as_json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print(render(report))
    if not report["running"]:
        return NOT_RUNNING
    healthy = all(c["answering"] and c["ready"] for c in report["children"].values())
    return 0 if healthy else 1


def collect_status(settings: Settings) -> dict[str, Any]:
    pid = holder(settings.home)
    info = read_server_file(settings.paths.server_file) if pid is not None else None
    report: dict[str, Any] = {
        "running": pid is not None,
        "pid": pid or None,
        "client_version": __version__,
        "data_dir": str(settings.home),
        "disk": disk_use(settings.home, settings.min_free_disk),
        "children": {},
    }
    if info is None:
        return report
    report.update({k: info.get(k) for k in ("version", "started_at", "state", "dashboard_url")})
    recorded = info.get("children") or {}
    for spec in CHILDREN:
        child = dict(recorded.get(spec.role) or {})
        port = int(child.get("port") or info.get(f"{spec.role}_port") or spec.port(settings))
        host = str(info.get("host") or settings.host)
        live = probe(host, port, spec.live_path, timeout=2.0)
        ready = (live if spec.ready_path == spec.live_path
                 else probe(host, port, spec.ready_path, timeout=2.0))
        about = probe(host, port, VERSION_PATHS[spec.role], timeout=2.0)
        child.update(
            port=port,
            answering=live.ok,
            ready=ready.ok,
            server_version=about.body.get("version") if isinstance(about.body, dict) else None,
        )
        report["children"][spec.role] = child
    return report


def render(report: dict[str, Any]) -> str:
    disk = report["disk"]
    lines = []
    if not report["running"]:
        lines.append("ModelDepot is not running. Start it with `modeldepot serve`.")
    else:
        lines.append(f"ModelDepot {report.get('version') or '?'} is running "
                     f"(pid {report['pid']}, {report.get('state') or 'starting'}, "
                     f"since {report.get('started_at') or '?'}).")
        if report.get("dashboard_url"):
            lines.append(f"  dashboard   {report['dashboard_url']}")
        for role, child in report["children"].items():
            state = child.get("state", "?").replace("_", " ")
            answer = ("ready" if child["ready"] else "answering, not ready") if child["answering"] \
                else "not answering"
            extra = f", {child['restarts']} restarts" if child.get("restarts") else ""
            if child.get("last_exit") and child.get("state") != "healthy":
                extra += f", last exit: {child['last_exit']}"
            lines.append(f"  {role:<11} {child.get('url', '')}  pid {child.get('pid') or '-'}  "
                         f"{state}, {answer}{extra}  (v{child.get('server_version') or '?'})")
    lines.append(f"  data dir    {report['data_dir']} ({size_text(disk['data_bytes'])} used, "
                 f"{size_text(disk['free_bytes'])} free of {size_text(disk['total_bytes'])}; "
                 f"writes keep {size_text(disk['min_free_bytes'])} free: min_free_disk)")
    lines.append(f"  client      modeldepot {report['client_version']}")
    return "\n".join(lines)
