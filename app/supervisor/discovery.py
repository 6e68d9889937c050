"""`server.json` in the data dir: where the running ModelDepot is and how its children are doing.

Clients (`modeldepot status`, the CLI's client commands, a second `serve`) read it to find the
servers. It is rewritten whenever a child changes state, always atomically (temp file, fsync,
rename), so a reader never sees half a file; it is removed on a clean stop. A file left by a killed
supervisor is recognised as stale because the instance lock is free (see lock.py).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from app.atomic import write_atomically


def write_server_file(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, json.dumps(data, indent=2, sort_keys=True).encode() + b"\n")


def read_server_file(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def remove_server_file(path: Path, pid: int) -> None:
    """Remove the file if it is ours; a newer supervisor's file is left alone."""
    data = read_server_file(path)
    if data is not None and data.get("pid") not in (pid, None):
        return
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
