"""How much the data dir holds and how much room is left: for `modeldepot status`, the
dashboard's status page and the metrics."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path


def disk_use(home: Path) -> dict[str, int | None]:
    used = 0
    for root, _dirs, files in os.walk(home):
        for name in files:
            with contextlib.suppress(OSError):
                used += os.lstat(os.path.join(root, name)).st_size
    try:
        free: int | None = shutil.disk_usage(home).free
    except OSError:
        free = None
    return {"data_bytes": used, "free_bytes": free}
