"""Content-addressed files: `blobs/<first two hex>/<sha256>`, written atomically.

A blob becomes visible only by `rename` of a fully written and fsynced temp file in the same file
system, followed by an fsync of the directory so the rename itself survives a power cut. A reader
therefore sees either no file or the whole file, never a prefix.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from app.atomic import fsync_dir
from app.errors import NotFound

CHUNK = 1 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")
TEMP_PREFIX = "upload-"


def durable_folder(folder: Path) -> None:
    """Make a blob shard folder exist, and its entry in blobs/ survive a power cut."""
    if not folder.is_dir():
        folder.mkdir(exist_ok=True)
        fsync_dir(folder.parent)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class BlobStore:
    def __init__(self, root: Path, tmp: Path) -> None:
        self.root = root
        self.tmp = tmp
        root.mkdir(parents=True, exist_ok=True)
        tmp.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        """The file of a digest. The digest is checked, so no caller string can become a path."""
        if not _SHA256.fullmatch(sha256):
            raise NotFound("No file with that digest.")
        return self.root / sha256[:2] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def temp_file(self) -> tuple[BinaryIO, Path]:
        """An open temp file in the data dir: the blobs' file system, so rename is atomic."""
        fd, name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=self.tmp)
        return os.fdopen(fd, "w+b"), Path(name)

    def receive(self, chunks: Iterator[bytes], limit: int | None = None) -> tuple[Path, str, int]:
        """Stream chunks into a temp file, hashing as they pass; returns (temp path, sha256, size).

        Raises OverflowError past `limit` bytes; the temp file is removed on any failure.
        """
        digest = hashlib.sha256()
        size = 0
        f, temp = self.temp_file()
        try:
            with f:
                for chunk in chunks:
                    size += len(chunk)
                    if limit is not None and size > limit:
                        raise OverflowError(size)
                    digest.update(chunk)
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return temp, digest.hexdigest(), size

    def adopt(self, temp: Path, sha256: str) -> Path:
        """Move a fsynced temp file into place under its digest and make the rename durable."""
        target = self.path(sha256)
        if target.is_file():
            temp.unlink(missing_ok=True)  # same content already stored: nothing new to write
            return target
        durable_folder(target.parent)
        os.replace(temp, target)
        fsync_dir(target.parent)
        return target

    def write_bytes(self, data: bytes) -> tuple[str, int]:
        """Store an in-memory payload durably (used by training and tests); returns (sha, size)."""
        temp, sha, size = self.receive(iter([data]))
        self.adopt(temp, sha)
        return sha, size

    def remove(self, sha256: str) -> int:
        """Delete a blob; returns the bytes freed (0 if it was already gone)."""
        target = self.path(sha256)
        try:
            size = target.stat().st_size
            target.unlink()
        except FileNotFoundError:
            return 0
        fsync_dir(target.parent)
        return size

    def verify(self, sha256: str) -> bool:
        target = self.path(sha256)
        return target.is_file() and file_sha256(target) == sha256

    def all_digests(self) -> Iterator[str]:
        for sub in self.root.iterdir():
            if sub.is_dir():
                for entry in sub.iterdir():
                    if _SHA256.fullmatch(entry.name):
                        yield entry.name
