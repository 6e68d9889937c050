"""The environment of the registry's sandbox processes, shared by the direct child
(app/formats/sandbox.py) and the zygote (app/formats/zygote_client.py); their command line is
app/program.py's."""

from __future__ import annotations

import os

# Secrets a sandbox process never needs and must not be handed.
_DROPPED_ENV = ("MODELDEPOT_TOKEN",)


def sandbox_environment() -> dict[str, str]:
    """The registry's environment without its secrets, with one BLAS/OpenMP thread: the checks
    are small, and the zygote must have no threads when it forks."""
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONDONTWRITEBYTECODE="1")
    return env
