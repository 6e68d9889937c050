"""What every registry view needs, kept on the Flask app (no module-level globals)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import current_app

from app.config import Settings
from app.security import SecurityPolicy
from app.store import Store

if TYPE_CHECKING:
    from app.registry.runner import JobRunner


@dataclass(frozen=True)
class Registry:
    settings: Settings
    store: Store
    policy: SecurityPolicy
    runner: JobRunner | None = None  # training and compile jobs on the process pool


def registry() -> Registry:
    reg: Registry = current_app.extensions["modeldepot"]
    return reg


def await_warm_imports() -> None:
    """Wait until the registry's background import of scikit-learn, skops and ONNX is over.

    Two threads importing scikit-learn at the same time can see it half-initialised (an
    ImportError such as "cannot import name 'clone' from 'sklearn.base'"), so a request that
    needs those libraries in the first seconds after start waits for the warm-up instead.
    """
    warm = current_app.extensions.get("warm_imports")
    if warm is not None:
        warm.join()
