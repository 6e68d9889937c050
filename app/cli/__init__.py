"""The `modeldepot` command: server sub-commands and client sub-commands over HTTP.

Business logic lives elsewhere; these modules parse arguments, resolve settings and print:
common.py (settings flags, clients), servers.py, models.py, jobs.py (datasets, train, jobs),
upkeep.py (gc, backup, restore).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from app.cli.common import CLIENT_SETTINGS, add_setting_flags
from app.errors import ModelDepotError

# The modules that add sub-commands, in the order `--help` lists them.
COMMAND_MODULES = ("servers", "models", "jobs", "fleet", "upkeep", "mirror")
# The long-lived processes: each imports only servers.py's commands, not the client commands'
# modules (the supervisor stays up as long as the box does; its memory counts every hour).
SERVER_COMMANDS = frozenset({"serve", "registry", "inference"})


def build_parser(modules: Sequence[str] = COMMAND_MODULES) -> argparse.ArgumentParser:
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
        add_setting_flags(p, flags)
        p.set_defaults(func=func)
        return p

    # servers; models; jobs: datasets, train, jobs; fleet: export, import, keys;
    # upkeep: gc, backup, restore; mirror: mirror add|list|show|sync|rm
    for name in modules:
        importlib.import_module(f"app.cli.{name}").add_commands(sub, command)
    return parser


def started_without_terminal() -> bool:
    return not (sys.stdin and sys.stdin.isatty()) and not (sys.stdout and sys.stdout.isatty())


SANDBOX_CHILD = "sandbox-child"  # internal: app/formats/sandbox.py starts it, never a person
SANDBOX_ZYGOTE = "sandbox-zygote"  # internal: app/formats/zygote_client.py starts it


def main(argv: Sequence[str] | None = None) -> int:
    args_given = sys.argv[1:] if argv is None else list(argv)
    if args_given[:1] == [SANDBOX_CHILD]:
        from app.formats.sandbox_child import main as sandbox_child

        return sandbox_child()
    if args_given[:1] == [SANDBOX_ZYGOTE]:
        from app.formats.zygote import main as sandbox_zygote

        return sandbox_zygote(args_given[1:])
    parser = build_parser(("servers",) if args_given[:1] and args_given[0] in SERVER_COMMANDS
                          else COMMAND_MODULES)
    if argv is None and len(sys.argv) == 1 and started_without_terminal():
        argv = ["serve", "--open"]  # a double-click: there is no terminal to print help to
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # a reader that went away shows here, not as a traceback at exit
        return code
    except BrokenPipeError:
        return _reader_gone()
    except ModelDepotError as exc:
        print(f"modeldepot: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _reader_gone() -> int:
    """`modeldepot models show x | head`: head has read enough and closed the pipe. End quietly
    with the status of a process killed by SIGPIPE, as other command-line tools do; stdout now
    points at the null device so the interpreter's final flush has nowhere to fail."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 141
