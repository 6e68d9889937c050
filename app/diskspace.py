"""How much the data dir holds and how much room is left: for `modeldepot status`, the
dashboard's status page and the metrics; and the disk guard (setting `min_free_disk`) that
refuses a write before it starts when it would leave less free space than that.

The guard is the early, clear answer; a write that still runs out of space mid-way (ENOSPC) is
answered 507 by app/resources.py and leaves nothing behind (temp files are removed on failure).
Serving predictions never writes, so it never needs the guard.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from app.config import parse_size
from app.errors import InsufficientStorage

DEFAULT_FLOOR = 1 << 30  # 1 GiB ...
DEFAULT_SHARE = 5.0  # ... or 5 % of the volume, whichever is smaller
SETTING = "min_free_disk"


def disk_use(home: Path, rule: str | None = None) -> dict[str, int | None]:
    used = 0
    for root, _dirs, files in os.walk(home):
        for name in files:
            with contextlib.suppress(OSError):
                used += os.lstat(os.path.join(root, name)).st_size
    room = room_of(home, rule)
    return {"data_bytes": used, "free_bytes": room.free if room else None,
            "total_bytes": room.total if room else None,
            "min_free_bytes": room.minimum if room else None}


@dataclass(frozen=True)
class Room:
    free: int  # bytes an unprivileged writer may still use
    total: int
    minimum: int  # what min_free_disk asks to keep free on this volume

    def left_after(self, incoming: int) -> int:
        return self.free - incoming


def required_free(total: int, rule: str | None) -> int:
    """Bytes `rule` (a min_free_disk value, app/config.py) keeps free on a volume of `total`."""
    if rule is None:
        return min(DEFAULT_FLOOR, int(total * DEFAULT_SHARE / 100))
    text = rule.strip()
    if text.endswith("%"):
        return int(total * float(text[:-1]) / 100)
    return 0 if text == "0" else parse_size(text)


def room_of(home: Path, rule: str | None) -> Room | None:
    """Free and total space of the data dir's volume (the nearest existing folder up), or None
    when the OS cannot say."""
    path = home
    while not path.exists() and path.parent != path:
        path = path.parent
    try:
        usage = shutil.disk_usage(path)
    except OSError:
        return None
    return Room(usage.free, usage.total, required_free(usage.total, rule))


def size_text(n: int | None) -> str:
    """Bytes for people: `12.3 MiB`; `?` when unknown."""
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def check_room(home: Path, rule: str | None, incoming: int, what: str) -> None:
    """Refuse (507, naming the setting and the free space) a write of `incoming` bytes that
    would leave less than min_free_disk free; nothing has been written when this raises."""
    room = room_of(home, rule)
    if room is None or room.minimum == 0 or room.left_after(incoming) >= room.minimum:
        return
    needs = f" needs about {size_text(incoming)} and" if incoming else ""
    raise InsufficientStorage(
        f"Refused before writing: {what}{needs} would leave less than {SETTING} "
        f"({size_text(room.minimum)}) free on the data dir's disk, which has "
        f"{size_text(room.free)} free. Free space (e.g. `modeldepot gc` with keep_versions) "
        f"or lower {SETTING}.",
        code="low_disk_space",
    )
