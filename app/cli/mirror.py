"""`modeldepot mirror add|list|show|sync|rm`: follow models of a central ModelDepot or of an
MLflow Model Registry (`mlflow+http://host:port`).

Client commands: the running registry keeps the mirror rows and runs the syncs
(app/fleet/mirror_loop.py); these only speak to its /api/v1/mirrors routes.
"""

from __future__ import annotations

import argparse
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

from app.cli.common import Command, print_json, registry_client
from app.config import Settings
from app.errors import ModelDepotError

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)?")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_every(text: str) -> float:
    """`60s`, `1m`, `2h`, `500ms` or plain seconds."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 60s, 5m or 1h")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _secret(path: Path | None, what: str) -> str | None:
    """A credential file's one line, read here and sent to the registry (which never opens a
    path a client names); neither printed nor logged."""
    if path is None:
        return None
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ModelDepotError(f"Cannot read the {what} file {path}: {exc.strerror}.") from exc
    except UnicodeDecodeError as exc:
        raise ModelDepotError(f"The {what} file {path} is not UTF-8 text.") from exc
    if not secret:
        raise ModelDepotError(f"The {what} file {path} is empty.")
    if "\n" in secret:
        raise ModelDepotError(f"The {what} file {path} must hold one line.")
    return secret


def _ago(iso_time: str | None) -> str:
    if iso_time is None:
        return "never"
    from datetime import datetime

    seconds = time.time() - datetime.fromisoformat(iso_time.replace("Z", "+00:00")).timestamp()
    return f"{max(0.0, seconds):.0f} s ago"


def describe(m: dict[str, Any]) -> str:
    """One mirror in a few lines: what, from where, how it stands."""
    lines = [f"{m['id']}  {m['state']:<7} {', '.join(m['models'])} from {m['upstream']} "
             f"every {m['every_s']:g} s{' (trust)' if m['trust'] else ''}",
             f"    last success {_ago(m['last_success'])}; {m['versions_applied']} versions "
             f"applied, {m['bytes_pulled']} bytes pulled, {m['failures']} failures in a row"]
    if m["last_error"]:
        lines.append(f"    last error: {m['last_error']}")
    lines += [f"    {a['model']}@{a['alias'] or a['upstream_version']} -> local v{a['version']} "
              f"(upstream v{a['upstream_version']})" for a in m["applied"]]
    return "\n".join(lines)


def print_mirror_status(settings: Settings) -> None:
    """`modeldepot status`'s mirror lines, read from the data dir's database (read-only), so they
    show while the registry is down too."""
    if not settings.paths.database.exists():
        return
    from app.store.db import Database
    from app.store.mirrors import MirrorStore

    database = Database(settings.paths.database, readonly=True)
    try:
        mirrors = MirrorStore(database).all()
    except sqlite3.OperationalError:  # a data dir from before mirrors: none
        return
    finally:
        database.close()
    for m in mirrors:
        print("mirror " + describe(m.to_dict()))


def cmd_add(args: argparse.Namespace) -> int:
    body = {"upstream": args.upstream, "models": args.model, "every_s": args.every,
            "trust": args.trust, "token": _secret(args.token_file, "token")}
    if args.basic_auth_file is not None:
        body["basic_auth"] = _secret(args.basic_auth_file, "basic auth")
    mirror = registry_client(args).request("POST", "/api/v1/mirrors", json_body=body)
    print(f"following {', '.join(mirror['models'])} from {mirror['upstream']} as mirror "
          f"{mirror['id']} (first sync now, then every {mirror['every_s']:g} s)")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    mirrors = registry_client(args).request("GET", "/api/v1/mirrors")["mirrors"]
    if args.json:
        print_json(mirrors)
    elif not mirrors:
        print("no mirrors; add one with `modeldepot mirror add http://central:8720 --model "
              "NAME@ALIAS` (or mlflow+http://mlflow:5000 for an MLflow registry)")
    for m in mirrors if not args.json else []:
        print(describe(m))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    mirror = registry_client(args).request("GET", f"/api/v1/mirrors/{_id(args.id)}")
    if args.json:
        print_json(mirror)
    else:
        print(describe(mirror))
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    client = registry_client(args)
    mirror_id = _id(args.id)
    before = client.request("POST", f"/api/v1/mirrors/{mirror_id}/sync")
    if not args.wait:
        print(f"mirror {mirror_id}: sync requested")
        return 0
    started = before["last_attempt"]
    deadline = time.monotonic() + args.wait
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = client.request("GET", f"/api/v1/mirrors/{mirror_id}")
        if not now["sync_requested"] and now["state"] != "syncing" and \
                now["last_attempt"] != started:
            print(describe(now))
            return 0 if now["state"] == "ok" else 1
    raise ModelDepotError(f"Mirror {mirror_id} did not finish a sync within {args.wait:g} s; "
                          "`modeldepot mirror show` tells how it stands.")


def cmd_rm(args: argparse.Namespace) -> int:
    registry_client(args).request("DELETE", f"/api/v1/mirrors/{_id(args.id)}")
    print(f"mirror {args.id} removed; the versions it brought stay")
    return 0


def _id(text: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{8}", text):
        raise ModelDepotError(f"{text[:40]!r} is not a mirror id; `modeldepot mirror list` "
                              "shows them.")
    return text


def add_commands(sub: Any, command: Command) -> None:
    group = sub.add_parser("mirror", help="Follow models of a central ModelDepot or an MLflow "
                           "registry.")
    msub = group.add_subparsers(dest="mirror_command", metavar="ACTION", required=True)
    p = command("add", cmd_add, "Follow NAME@ALIAS refs of a central ModelDepot or an MLflow "
                "registry.", parent=msub)
    p.add_argument("upstream", help="The central registry, http://host:port, or an MLflow "
                   "tracking server, mlflow+http://host:port")
    p.add_argument("--model", action="append", required=True, metavar="NAME@REF",
                   help="A ref to follow (repeat for more), e.g. churn@production; from MLflow "
                   "churn@champion, churn@stage:Production or churn@3.")
    p.add_argument("--every", type=parse_every, default=60.0, metavar="DURATION",
                   help="Time between syncs: 60s (default), 5m, 1h.")
    secrets = p.add_mutually_exclusive_group()
    secrets.add_argument("--token-file", type=Path,
                         help="A file holding the upstream's token (sent as a bearer token).")
    secrets.add_argument("--basic-auth-file", type=Path,
                         help="A file holding user:password for an MLflow server behind HTTP "
                         "basic auth.")
    p.add_argument("--trust", action="store_true",
                   help="Accept pickles from this upstream (they run code when loaded; MLflow "
                   "cloudpickle/pickle models need it, skops ones do not).")
    p = command("list", cmd_list, "List mirrors and how each stands.", parent=msub)
    p.add_argument("--json", action="store_true")
    p = command("show", cmd_show, "Show one mirror.", parent=msub)
    p.add_argument("id")
    p.add_argument("--json", action="store_true")
    p = command("sync", cmd_sync, "Sync a mirror now.", parent=msub)
    p.add_argument("id")
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                   help="Wait up to this long for the sync and show its outcome.")
    p = command("rm", cmd_rm, "Stop following (the versions it brought stay).", parent=msub)
    p.add_argument("id")
