"""Writing a small file so that a reader, or a power cut, sees the old content or the new one,
never a mix: temp file beside it, fsync, rename, fsync of the folder. The one such writer for
settings-like files (server.json, keys, a converted model); blobs have their own streaming
variant in app/store/blobs.py built on the same fsync_dir."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in `path` survive a power cut."""
    if os.name == "nt":  # Windows cannot open a directory for fsync; NTFS journals the rename.
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace `path` with `data` (created with `mode`), durably and all at once."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            os.write(fd, data)  # small files: one write
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    fsync_dir(path.parent)
