"""Logging: one line per event, with the process role, to stderr and a rotating file."""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s [{role}] %(name)s: %(message)s"


def setup_logging(role: str, level: str = "info", log_dir: Path | None = None) -> None:
    formatter = logging.Formatter(FORMAT.format(role=role))
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_dir is not None:
        try:
            log_dir.mkdir(parents=True, exist_ok=True)
            handlers.append(logging.handlers.RotatingFileHandler(
                log_dir / f"{role}.log", maxBytes=10 << 20, backupCount=3, encoding="utf-8"
            ))
        except OSError as exc:  # a read-only data dir must not stop the server from starting
            print(f"modeldepot: not logging to a file: {exc}", file=sys.stderr)
    root = logging.getLogger()
    root.handlers.clear()
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
