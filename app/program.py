"""This same program, started again with a sub-command: how the supervisor starts the servers and
the registry starts its sandbox processes. Every role is one executable (docs/architecture.md)."""

from __future__ import annotations

import sys


def program_command(subcommand: str, *args: str) -> list[str]:
    """The frozen binary itself, or `python -m app` from source, running `subcommand`."""
    if getattr(sys, "frozen", False):
        return [sys.executable, subcommand, *args]
    return [sys.executable, "-m", "app", subcommand, *args]
