"""The `modeldepot` command: server sub-commands and client sub-commands over HTTP.

Business logic lives elsewhere; these modules parse arguments, resolve settings and print:
common.py (settings flags, clients), servers.py, models.py, jobs.py (datasets, train, jobs),
upkeep.py (gc, backup, restore).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from app.cli import fleet, jobs, mirror, models, servers, upkeep
from app.cli.common import CLIENT_SETTINGS, add_setting_flags
from app.errors import ModelDepotError


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
        add_setting_flags(p, flags)
        p.set_defaults(func=func)
        return p

    servers.add_commands(sub, command)
    models.add_commands(sub, command)
    jobs.add_commands(sub, command)  # datasets, train, jobs
    fleet.add_commands(sub, command)  # export, import, keys
    upkeep.add_commands(sub, command)  # gc, backup, restore
    mirror.add_commands(sub, command)  # mirror add|list|show|sync|rm
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
    parser = build_parser()
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
