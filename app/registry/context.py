"""What every registry view needs, kept on the Flask app (no module-level globals)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import current_app

from app.config import Settings
from app.registry.admission import UploadSlots
from app.security import SecurityPolicy
from app.store import Store

if TYPE_CHECKING:
    from app.training.runner import JobRunner


@dataclass(frozen=True)
class Registry:
    settings: Settings
    store: Store
    policy: SecurityPolicy
    runner: JobRunner  # training and compile jobs on the process pool
    uploads: UploadSlots  # uploads in progress, at most max_uploads_in_progress


def registry() -> Registry:
    reg: Registry = current_app.extensions["modeldepot"]
    return reg
