"""What `modeldepot serve`, `status` and `stop` run (wired in app/cli/servers.py)."""

from __future__ import annotations

import datetime
import logging
import os
import signal
import socket
import sys
import time
from typing import Any

from app import __version__
from app.config import Settings
from app.errors import ModelDepotError
from app.lazy_unpack import MODEL_LIBRARIES, NUMPY, ONNX_RUNTIME, unpack_in_background
from app.net import PortInUse, base_url
from app.supervisor.browser import dashboard_url, open_dashboard
from app.supervisor.children import CHILDREN
from app.supervisor.discovery import read_server_file, remove_server_file, write_server_file
from app.supervisor.frozen import remove_unpack_dir_if_orphaned, watch_bootloader
from app.supervisor.lock import InstanceLock, holder
from app.supervisor.loop import STOP_GRACE, Supervisor
from app.supervisor.notify import Notifier
from app.supervisor.status import run_status

__all__ = ["run_serve", "run_status", "run_stop"]

log = logging.getLogger(__name__)


class AlreadyRunning(ModelDepotError):
    code = "already_running"


# -- serve -------------------------------------------------------------------------------------

def run_serve(settings: Settings, open_browser: bool = False) -> int:
    from app.logs import setup_logging

    bootloader = watch_bootloader()  # a onefile build: stop if its launcher is killed
    lock = InstanceLock(settings.home)
    if not lock.acquire():
        return _already_running(settings, open_browser)
    try:
        setup_logging("supervisor", settings.log_level, settings.paths.logs)
        settings = _claim_ports(settings)
        token = _token(settings)
        _unpack_deferred_libraries(settings)  # once this start is sure to go on
        notifier = Notifier()
        started_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")

        def write(sup: Supervisor) -> None:
            write_server_file(settings.paths.server_file,
                              _server_info(settings, started_at) | sup.snapshot())

        def ready(sup: Supervisor) -> None:
            _announce(settings, sup)
            # A onefile build's model libraries, before a request needs them.
            unpack_in_background(then=[ONNX_RUNTIME, MODEL_LIBRARIES])
            if open_browser:
                open_dashboard(dashboard_url(_registry_url(settings), token), wait=False)

        log.info("modeldepot %s supervisor (pid %d), data dir %s", __version__, os.getpid(),
                 settings.home)
        supervisor = Supervisor(settings, notifier, on_change=write, on_ready=ready)
        try:
            return supervisor.run()
        finally:
            remove_server_file(settings.paths.server_file, os.getpid())
    finally:
        lock.release()
        remove_unpack_dir_if_orphaned(bootloader)


def _unpack_deferred_libraries(settings: Settings) -> None:
    """A onefile build's numpy now, on the idle core while the servers start, and onnxruntime
    next if the data dir holds files (the inference server loads production models' ONNX twins
    before it reports ready); `ready` unpacks the rest (app/lazy_unpack.py)."""
    try:
        holds_files = any(settings.paths.blobs.iterdir())
    except OSError:
        holds_files = False
    unpack_in_background([NUMPY, ONNX_RUNTIME] if holds_files else [NUMPY])


def _registry_url(settings: Settings) -> str:
    return base_url(settings.host, settings.registry_port)


def _server_info(settings: Settings, started_at: str) -> dict[str, Any]:
    registry = _registry_url(settings)
    return {
        "pid": os.getpid(),
        "version": __version__,
        "home": str(settings.home),
        "host": settings.host,
        "registry_port": settings.registry_port,
        "inference_port": settings.inference_port,
        "registry_url": registry,
        "inference_url": base_url(settings.host, settings.inference_port),
        "dashboard_url": registry + "/",
        "started_at": started_at,
        "updated_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def _token(settings: Settings) -> str:
    # Created here, before either child starts, so both servers and the browser agree on it.
    from app.security import api_token

    return api_token(settings)


def _claim_ports(settings: Settings) -> Settings:
    """Fail clearly if a port is taken; never move to another port behind the user's back.

    Port 0 is an explicit request for any free port, so one is chosen here and passed on.
    """
    chosen: dict[str, int] = {}
    for spec in CHILDREN:
        port = spec.port(settings)
        if port == 0:
            chosen[spec.port_setting] = port = _free_port(settings.host)
        _check_port(settings.host, port, spec.port_setting)
    settings = settings.replace(**chosen) if chosen else settings
    if settings.registry_port == settings.inference_port:
        raise PortInUse(
            f"The registry and the inference server cannot share port {settings.registry_port}. "
            "Set different ports with --registry-port and --inference-port."
        )
    return settings


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _check_port(host: str, port: int, setting: str) -> None:
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        # The same options the servers bind with, so a port in TIME_WAIT does not count as taken.
        if sys.platform != "win32":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host.strip("[]"), port))
        except OSError as exc:
            raise PortInUse(
                f"Port {port} on {host} is in use ({exc.strerror}), so the "
                f"{setting.removesuffix('_port')} cannot start. Stop what holds it, or choose "
                f"another port with --{setting.replace('_', '-')} or "
                f"MODELDEPOT_{setting.upper()}."
            ) from exc


def _free_port(host: str) -> int:
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.bind((host.strip("[]"), 0))
        return int(sock.getsockname()[1])


def _announce(settings: Settings, sup: Supervisor) -> None:
    registry = _registry_url(settings)
    inference = base_url(settings.host, settings.inference_port)
    lines = [
        f"ModelDepot {__version__} is running ({sup.overall_state()}).",
        f"  dashboard  {registry}/",
        f"  registry   {registry}/api/v1",
        f"  inference  {inference}/v2",
        f"  data dir   {settings.home}",
        "  token      `modeldepot token` prints it (requests that change anything need it)",
        "Stop with Ctrl+C or `modeldepot stop`.",
    ]
    print("\n".join(lines), flush=True)


def _already_running(settings: Settings, open_browser: bool) -> int:
    pid = holder(settings.home)
    info = _wait_for_server_file(settings, pid, 30.0 if open_browser else 1.0)
    where = (f": registry {info['registry_url']}, inference {info['inference_url']}"
             if info else " (still starting)")
    message = (f"ModelDepot is already running on the data dir {settings.home} "
               f"(pid {pid or 'unknown'}){where}. `modeldepot status` shows it; "
               "`modeldepot stop` stops it.")
    if open_browser and info:
        print(message, file=sys.stderr)
        open_dashboard(dashboard_url(info["registry_url"], _token(settings)), wait=True)
        return 0
    raise AlreadyRunning(message)


def _wait_for_server_file(settings: Settings, pid: int | None,
                          patience: float) -> dict[str, Any] | None:
    deadline = time.monotonic() + patience
    while True:
        info = read_server_file(settings.paths.server_file)
        if info and (not pid or info.get("pid") == pid) and "registry_url" in info:
            return info
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.2)


# -- stop --------------------------------------------------------------------------------------

def run_stop(settings: Settings) -> int:
    pid = holder(settings.home)
    if pid == 0:  # the lock is held but the pid not yet written: a supervisor starting up
        time.sleep(0.5)
        pid = holder(settings.home)
    if pid is None:  # (also when it stopped in the meantime)
        print(f"ModelDepot is not running on the data dir {settings.home}.")
        return 0
    if pid == 0:
        raise ModelDepotError("ModelDepot is starting on this data dir; try again in a moment.")
    try:
        # Windows: SIGTERM ends the process at once (TerminateProcess), so no graceful stop there.
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    except PermissionError as exc:
        raise ModelDepotError(
            f"ModelDepot (pid {pid}) runs as another user, so it cannot be stopped from here. "
            "If it is the system service, use `sudo systemctl stop modeldepot`."
        ) from exc
    deadline = time.monotonic() + STOP_GRACE + 15.0
    while holder(settings.home) is not None:
        if time.monotonic() >= deadline:
            raise ModelDepotError(f"ModelDepot (pid {pid}) did not stop within "
                                  f"{STOP_GRACE + 15.0:.0f} s.")
        time.sleep(0.1)
    print(f"Stopped ModelDepot (pid {pid}).")
    return 0
