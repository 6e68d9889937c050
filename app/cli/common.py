"""What every sub-command module of the command line shares: the settings flags, resolving
them, and a client for the running servers (app/client.py)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from typing import Any

from app.config import SETTINGS, Settings, resolve

CLIENT_SETTINGS = ("home", "host", "registry_port", "inference_port", "token")
# command(name, func, help, flags=CLIENT_SETTINGS, parent=...): adds one sub-command.
Command = Callable[..., argparse.ArgumentParser]


def add_setting_flags(parser: argparse.ArgumentParser, names: Sequence[str] | None = None) -> None:
    group = parser.add_argument_group("settings (flag > MODELDEPOT_<NAME> > config.toml > default)")
    for setting in SETTINGS:
        if names is not None and setting.name not in names:
            continue
        # argparse %-formats help text: min_free_disk's "5%" made `serve --help` crash.
        help_text = setting.help.replace("%", "%%")
        flag = "--" + setting.name.replace("_", "-")
        if setting.parse.__name__ == "_parse_bool":
            group.add_argument(
                flag,
                dest=setting.name,
                action="store_const",
                const="true",
                default=None,
                help=help_text,
            )
        else:
            group.add_argument(
                flag,
                dest=setting.name,
                default=None,
                help=help_text,
                metavar=setting.name.upper(),
            )


def settings_from(args: argparse.Namespace) -> Settings:
    flags = {s.name: getattr(args, s.name, None) for s in SETTINGS}
    return resolve(flags)


def server_client(args: argparse.Namespace, role: str = "registry") -> Any:
    """A client for the running `role` server ("registry" or "inference"), with the token.

    An explicit port setting wins; otherwise the running supervisor's `server.json` says where.
    """
    from app.client import Client
    from app.net import base_url
    from app.security import load_or_create_token
    from app.supervisor.discovery import read_server_file

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


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))


