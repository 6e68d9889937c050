"""How the registry starts a process of this same program for the sandbox: the command line and
the environment, shared by the direct child (app/formats/sandbox.py) and the zygote
(app/formats/zygote_client.py)."""

from __future__ import annotations

import os
import sys

# Secrets a sandbox process never needs and must not be handed.
_DROPPED_ENV = ("MODELDEPOT_TOKEN",)


def program_command(subcommand: str, *args: str) -> list[str]:
    """This same program running `subcommand` (app/cli.py dispatches the sandbox ones first):
    the frozen binary itself, or `python -m app` from source."""
    if getattr(sys, "frozen", False):
        return [sys.executable, subcommand, *args]
    return [sys.executable, "-m", "app", subcommand, *args]


def sandbox_environment() -> dict[str, str]:
    """The registry's environment without its secrets, with one BLAS/OpenMP thread: the checks
    are small, and the zygote must have no threads when it forks."""
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONDONTWRITEBYTECODE="1")
    return env
