"""Sub-commands that run or look after ModelDepot on this machine: serve, the two servers,
status, stop, paths, token, version, notices, doctor."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from typing import Any

from app import __version__
from app.cli.common import CLIENT_SETTINGS, Command, settings_from
from app.config import Settings
from app.errors import ModelDepotError


def _run_server(args: argparse.Namespace, role: str, serve: Callable[[Settings], None]) -> int:
    """A child of `serve` (or a server started by hand): log as `role`, die with the supervisor."""
    from app.logs import setup_logging
    from app.oslimits import raise_open_file_limit
    from app.parentwatch import watch_parent

    settings = settings_from(args)
    setup_logging(role, settings.log_level, settings.paths.logs)
    soft, hard = raise_open_file_limit()
    logging.getLogger(__name__).info("open-file limit %d (hard %d)", soft, hard)
    watch_parent()
    serve(settings)
    return 0


def cmd_registry(args: argparse.Namespace) -> int:
    from app.registry.server import serve_registry

    return _run_server(args, "registry", serve_registry)


def cmd_inference(args: argparse.Namespace) -> int:
    from app.inference.server import serve_inference

    return _run_server(args, "inference", serve_inference)


def cmd_serve(args: argparse.Namespace) -> int:
    from app.oslimits import raise_open_file_limit
    from app.supervisor.commands import run_serve

    raise_open_file_limit()  # before any child starts: they inherit it

    return run_serve(settings_from(args), open_browser=args.open)


def cmd_status(args: argparse.Namespace) -> int:
    from app.supervisor.commands import run_status

    settings = settings_from(args)
    code = run_status(settings, as_json=args.json)
    if not args.json:
        from app.cli.mirror import print_mirror_status

        print_mirror_status(settings)
    return code


def cmd_stop(args: argparse.Namespace) -> int:
    from app.supervisor.commands import run_stop

    return run_stop(settings_from(args))


def cmd_paths(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    p = settings.paths
    rows = [
        ("data dir", p.home),
        ("database", p.database),
        ("model files", p.blobs),
        ("temp files", p.tmp),
        ("token", p.token_file),
        ("config", p.config_file),
        ("server file", p.server_file),
        ("logs", p.logs),
    ]
    for label, path in rows:
        print(f"{label:<12} {path}")
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from app.security import api_token

    settings = settings_from(args)
    print(api_token(settings))
    return 0


def cmd_version(args: argparse.Namespace) -> int:
    print(f"modeldepot {__version__}")
    if args.verbose:
        print(verbose_version())
    return 0


def verbose_version() -> str:
    """What is inside: the interpreter, the schema this release writes, the lock the build
    installed from and every bundled library with its version (from the notices, written at
    build time from what was installed)."""
    import platform
    import sys

    from app.bundled import bundled_libraries, lock_digest, third_party_notices
    from app.store.db import SCHEMA_VERSION

    lines = [f"  python      {platform.python_version()} ({sys.platform}, {platform.machine()})",
             f"  build       {'binary' if getattr(sys, 'frozen', False) else 'from source'}",
             f"  data schema {SCHEMA_VERSION} (reads data dirs written by earlier releases)"]
    try:
        notices = third_party_notices()
    except FileNotFoundError as exc:
        return "\n".join([*lines, f"  libraries   unknown: {exc}"])
    lines.append(f"  lock        requirements.lock sha256 {lock_digest(notices) or 'not recorded'}")
    lines += [f"  {name:<24} {version}" for name, version in bundled_libraries(notices)]
    return "\n".join(lines)


def cmd_notices(args: argparse.Namespace) -> int:
    from app.bundled import third_party_notices

    try:
        print(third_party_notices(), end="")
    except FileNotFoundError as exc:
        raise ModelDepotError(f"{exc} Reinstall ModelDepot to restore it.") from exc
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from app.formats.confine import confinement
    from app.store import Store
    from app.store.doctor import run_doctor

    settings = settings_from(args)
    if not settings.paths.database.exists():
        print(f"No database at {settings.paths.database}: nothing to check.")
        return 0
    report = run_doctor(Store(settings.paths), mark=not args.no_mark)
    # The verdict stays the last line: scripts read it with `tail -1`.
    print(f"Uploaded model files are checked with {confinement()[1]}.")
    print(report.render())
    return 0 if report.healthy else 1


def add_commands(sub: Any, command: Command) -> None:
    serve = command("serve", cmd_serve, "Start both servers and keep them running.", None)
    serve.add_argument(
        "--open",
        action="store_true",
        help="Open the dashboard in the browser once ready (or at the running one).",
    )
    status = command(
        "status", cmd_status, "Show whether ModelDepot is running, and where.", CLIENT_SETTINGS
    )
    status.add_argument("--json", action="store_true")
    command("stop", cmd_stop, "Stop a running `modeldepot serve`.", ("home",))
    command("registry", cmd_registry, "Run the registry server (Flask on waitress).", None)
    command("inference", cmd_inference, "Run the inference server (FastAPI on uvicorn).", None)
    command("paths", cmd_paths, "Print where ModelDepot keeps everything.", ("home",))
    command("token", cmd_token, "Print the API token (created on first use).", ("home", "token"))
    version = command("version", cmd_version, "Print the version.", ())
    version.add_argument("--verbose", action="store_true",
                         help="Also print the Python, data schema, lock and bundled libraries.")
    command("notices", cmd_notices, "Print the licences of the third-party software bundled.", ())
    doctor = command(
        "doctor", cmd_doctor, "Check the database and every model file's sha256.", ("home",)
    )
    doctor.add_argument(
        "--no-mark",
        action="store_true",
        help="Only report; do not mark mismatching versions corrupt.",
    )
