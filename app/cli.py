"""The `modeldepot` command: server sub-commands and client sub-commands over HTTP.

Business logic lives elsewhere; this module parses arguments, resolves settings and prints.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from app import __version__
from app.config import SETTINGS, Settings, resolve
from app.errors import ModelDepotError
from app.fleet.commands import add_commands as add_fleet_commands
from app.jobs_cli import add_commands as add_job_commands

CLIENT_SETTINGS = ("home", "host", "registry_port", "inference_port", "token")


def _add_setting_flags(parser: argparse.ArgumentParser, names: Sequence[str] | None = None) -> None:
    group = parser.add_argument_group("settings (flag > MODELDEPOT_<NAME> > config.toml > default)")
    for setting in SETTINGS:
        if names is not None and setting.name not in names:
            continue
        flag = "--" + setting.name.replace("_", "-")
        if setting.parse.__name__ == "_parse_bool":
            group.add_argument(
                flag,
                dest=setting.name,
                action="store_const",
                const="true",
                default=None,
                help=setting.help,
            )
        else:
            group.add_argument(
                flag,
                dest=setting.name,
                default=None,
                help=setting.help,
                metavar=setting.name.upper(),
            )


def settings_from(args: argparse.Namespace) -> Settings:
    flags = {s.name: getattr(args, s.name, None) for s in SETTINGS}
    return resolve(flags)


# -- server commands -------------------------------------------------------------------------


def _run_server(args: argparse.Namespace, role: str, serve: Callable[[Settings], None]) -> int:
    """A child of `serve` (or a server started by hand): log as `role`, die with the supervisor."""
    from app.logs import setup_logging
    from app.supervisor.parentwatch import watch_parent

    settings = settings_from(args)
    setup_logging(role, settings.log_level, settings.paths.logs)
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
    from app.supervisor.commands import run_serve

    return run_serve(settings_from(args), open_browser=args.open)


def cmd_status(args: argparse.Namespace) -> int:
    from app.supervisor.commands import run_status

    return run_status(settings_from(args), as_json=args.json)


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
    return 0


def cmd_notices(args: argparse.Namespace) -> int:
    from app.bundled import third_party_notices

    try:
        print(third_party_notices(), end="")
    except FileNotFoundError as exc:
        raise ModelDepotError(f"{exc} Reinstall ModelDepot to restore it.") from exc
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from app.store import Store
    from app.store.doctor import run_doctor

    settings = settings_from(args)
    if not settings.paths.database.exists():
        print(f"No database at {settings.paths.database}: nothing to check.")
        return 0
    report = run_doctor(Store(settings.paths), mark=not args.no_mark)
    print(report.render())
    return 0 if report.healthy else 1


# -- client commands -------------------------------------------------------------------------


def server_client(args: argparse.Namespace, role: str = "registry") -> Any:
    """A client for the running `role` server ("registry" or "inference"), with the token.

    An explicit port setting wins; otherwise the running supervisor's `server.json` says where.
    """
    from app.client import Client
    from app.security import load_or_create_token
    from app.supervisor.discovery import read_server_file
    from app.supervisor.health import base_url

    settings = settings_from(args)
    port_setting = f"{role}_port"
    url = base_url(settings.host, getattr(settings, port_setting))
    if port_setting not in settings.sources:
        running = read_server_file(settings.paths.server_file) or {}
        url = running.get(f"{role}_url", url)
    token = settings.token
    if token is None and settings.paths.token_file.exists():
        token = load_or_create_token(settings.paths.token_file)
    return Client(url, token)


def registry_client(args: argparse.Namespace) -> Any:
    return server_client(args, "registry")


def _print(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))


def cmd_models_list(args: argparse.Namespace) -> int:
    client = registry_client(args)
    page = client.request(
        "GET", "/api/v1/models", query={"q": args.q, "tag": args.tag or None, "limit": args.limit}
    )
    if args.json:
        _print(page)
        return 0
    print(f"{'NAME':<32} {'LATEST':>6} {'VERSIONS':>8}  ALIASES")
    for m in page["models"]:
        aliases = ", ".join(f"{a}->{v}" for a, v in m["aliases"].items())
        print(f"{m['name']:<32} {m['latest_version'] or '-':>6} {m['version_count']:>8}  {aliases}")
    return 0


def cmd_models_show(args: argparse.Namespace) -> int:
    client = registry_client(args)
    name = quote(args.name, safe="")
    if args.version:
        data = client.request(
            "GET", f"/api/v1/models/{name}/versions/{quote(args.version, safe='')}"
        )
    else:
        data = client.request("GET", f"/api/v1/models/{name}")
        data["versions"] = client.request(
            "GET", f"/api/v1/models/{name}/versions", query={"limit": 20}
        )["versions"]
    _print(data)
    return 0


def cmd_models_push(args: argparse.Namespace) -> int:
    from app.models_push import push_model

    version = push_model(registry_client(args), args)
    print(
        f"pushed {version['model']} version {version['version']} "
        f"({version['format']}, {version['size']} bytes, {version['status']})"
    )
    for warning in version.get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def cmd_models_alias(args: argparse.Namespace) -> int:
    client = registry_client(args)
    path = f"/api/v1/models/{quote(args.name, safe='')}/aliases/{quote(args.alias, safe='')}"
    if args.delete:
        client.request("DELETE", path)
        print(f"removed alias {args.alias} of {args.name}")
        return 0
    if args.version is None:
        raise ModelDepotError("Give the version to point the alias at, or --delete.")
    client.request("PUT", path, json_body={"version": args.version})
    print(f"{args.name}@{args.alias} -> version {args.version}")
    return 0


def cmd_models_rm(args: argparse.Namespace) -> int:
    client = registry_client(args)
    path = f"/api/v1/models/{quote(args.name, safe='')}"
    if args.version:
        path += f"/versions/{quote(args.version, safe='')}"
    result = client.request("DELETE", path, query={"force": "true" if args.force else None})
    print(f"deleted; freed {result['freed_bytes']} bytes")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """POST a simple-JSON body to the inference server and print its answer."""
    if args.input is not None:
        text = args.input
    elif args.file is not None:
        text = sys.stdin.read() if str(args.file) == "-" else args.file.read_text(encoding="utf-8")
    else:
        text = sys.stdin.read()
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise ModelDepotError(f"The input is not valid JSON: {exc}.") from exc
    if isinstance(body, list):
        body = {"instances": body}
    if not isinstance(body, dict):
        raise ModelDepotError('Give a JSON object such as {"instances": [[1, 2, 3]]}, or a list.')
    if args.proba:
        body["proba"] = True
    path = f"/v1/models/{quote(args.name, safe='')}"
    if args.version:
        path += f"/versions/{quote(args.version, safe='')}"
    _print(server_client(args, "inference").request("POST", path + "/predict", json_body=body))
    return 0


# -- parser ----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modeldepot", description="Keep and serve machine-learning models, offline."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(
        name: str,
        func: Callable[[argparse.Namespace], int],
        help: str,
        flags: Sequence[str] | None = CLIENT_SETTINGS,
        parent: Any = sub,
    ) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(name, help=help, description=help)
        _add_setting_flags(p, flags)
        p.set_defaults(func=func)
        return p

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
    command("version", cmd_version, "Print the version.", ())
    command("notices", cmd_notices, "Print the licences of the third-party software bundled.", ())
    doctor = command(
        "doctor", cmd_doctor, "Check the database and every model file's sha256.", ("home",)
    )
    doctor.add_argument(
        "--no-mark",
        action="store_true",
        help="Only report; do not mark mismatching versions corrupt.",
    )

    models = sub.add_parser("models", help="List, show, push, alias and remove models.")
    msub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    p = command("list", cmd_models_list, "List models.", parent=msub)
    p.add_argument("-q", dest="q", help="Substring of the name or description.")
    p.add_argument("--tag", action="append", help="key:value (repeatable).")
    p.add_argument("--limit", type=int)
    p.add_argument("--json", action="store_true")
    p = command("show", cmd_models_show, "Show a model, or one version of it.", parent=msub)
    p.add_argument("name")
    p.add_argument("version", nargs="?", help="Number, 'latest' or alias.")
    p = command("push", cmd_models_push, "Upload a model file as a new version.", parent=msub)
    p.add_argument("file", type=Path)
    p.add_argument("--name", required=True, help="Model name.")
    p.add_argument("--description", default="")
    p.add_argument("--tag", action="append", default=[], help="key=value (repeatable).")
    p.add_argument("--alias", help="Point this alias at the new version.")
    p.add_argument(
        "--keep-pickle",
        action="store_true",
        help="Upload a pickle as it is instead of converting it to skops.",
    )
    p = command(
        "alias", cmd_models_alias, "Point an alias at a version, or --delete it.", parent=msub
    )
    p.add_argument("name")
    p.add_argument("alias")
    p.add_argument("version", nargs="?", type=int)
    p.add_argument("--delete", action="store_true")
    p = command("rm", cmd_models_rm, "Delete a model, or one version of it.", parent=msub)
    p.add_argument("name")
    p.add_argument("version", nargs="?")
    p.add_argument("--force", action="store_true", help="Delete even if aliases point into it.")
    p = command("predict", cmd_predict, "Ask the inference server for predictions.")
    p.add_argument("name", help="Model name.")
    p.add_argument(
        "--version", help="Number, 'latest' or alias (default: production, else latest)."
    )
    p.add_argument(
        "--input", "-i", help="JSON body or list of rows, e.g. '[[5.1, 3.5, 1.4, 0.2]]'."
    )
    p.add_argument("--file", "-f", type=Path, help="Read the JSON from a file ('-' for stdin).")
    p.add_argument("--proba", action="store_true", help="Also return class probabilities.")
    add_job_commands(sub, command)  # datasets, train, jobs
    add_fleet_commands(sub, command)  # export, import, keys
    return parser


def started_without_terminal() -> bool:
    return not (sys.stdin and sys.stdin.isatty()) and not (sys.stdout and sys.stdout.isatty())


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    if argv is None and len(sys.argv) == 1 and started_without_terminal():
        argv = ["serve", "--open"]  # a double-click: there is no terminal to print help to
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args))
    except ModelDepotError as exc:
        print(f"modeldepot: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
