"""A plain POSIX (ustar) tar, written and read as a stream: no temp file, no seek, flat memory.

Only what a bundle needs: regular files with short names. The reader is strict on purpose: it
accepts regular-file headers with a valid checksum and nothing else (no links, devices,
directories, pax or GNU extension headers), so a name is always exactly what the header says
and the caller can refuse every name it does not expect. Every failure is a BadBundle naming the
member, never an OSError or a tarfile exception.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from app.errors import Unprocessable

BLOCK = 512
RECORD = 20 * BLOCK  # tar's default record size: the archive ends on a record boundary
CHUNK = 1 << 20
_REGULAR = (tarfile.REGTYPE, tarfile.AREGTYPE)
_MTIME = 0  # members carry no time: the manifest has created_at, and equal bundles stay equal


class BadBundle(Unprocessable):
    """A bundle that is not what the format says: the message names the member or field."""

    code = "invalid_bundle"


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def member_header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = _MTIME
    info.type = tarfile.REGTYPE
    return info.tobuf(format=tarfile.USTAR_FORMAT)


def padding(size: int) -> bytes:
    return b"\0" * (-size % BLOCK)


def member_length(size: int) -> int:
    """Bytes a member of `size` bytes takes in the archive: header, data, padding."""
    return BLOCK + size + (-size % BLOCK)


def end_of_archive(written: int) -> bytes:
    """Two zero blocks, then zeros up to the record boundary (what `tar` itself writes)."""
    total = written + 2 * BLOCK
    return b"\0" * (2 * BLOCK + (-total % RECORD))


def archive_length(member_sizes: list[int]) -> int:
    body = sum(member_length(size) for size in member_sizes)
    return body + len(end_of_archive(body))


@dataclass
class Member:
    name: str
    size: int


class TarReader:
    """Members of a tar stream in order; the caller reads each member's data before the next."""

    def __init__(self, stream: Readable) -> None:
        self._stream = stream
        self._left = 0  # unread data bytes of the current member
        self._pad = 0
        self._current = ""
        self.consumed = 0  # bytes read from the stream so far
        self.ended = False

    def _read_exact(self, size: int, what: str) -> bytes:
        parts: list[bytes] = []
        want = size
        while want:
            chunk = self._stream.read(min(want, CHUNK))
            if not chunk:
                raise BadBundle(f"The bundle is truncated: it ends inside {what}.")
            parts.append(chunk)
            want -= len(chunk)
        self.consumed += size
        return b"".join(parts) if len(parts) != 1 else parts[0]

    def next(self) -> Member | None:
        """The next member's header, or None at the end-of-archive marker."""
        if self._left or self._pad:
            self.skip()
        where = f"the header after {self._current!r}" if self._current else "its first header"
        header = self._read_exact(BLOCK, where)
        if header == b"\0" * BLOCK:
            self.ended = True
            return None
        try:
            info = tarfile.TarInfo.frombuf(header, "utf-8", "strict")
        except (tarfile.HeaderError, UnicodeDecodeError) as exc:
            if not self._current:
                raise BadBundle("This is not a model bundle: it does not start with a tar "
                                "header (a bundle is a plain, uncompressed tar).") from exc
            raise BadBundle(f"The tar header after {self._current!r} is damaged.") from exc
        name = info.name
        if info.type not in _REGULAR:
            kind = {tarfile.SYMTYPE: "a symbolic link", tarfile.LNKTYPE: "a hard link",
                    tarfile.CHRTYPE: "a device file", tarfile.BLKTYPE: "a device file",
                    tarfile.DIRTYPE: "a directory", tarfile.FIFOTYPE: "a FIFO"}.get(
                        info.type, "an extended or unknown header")
            raise BadBundle(f"The member {_shown(name)} is {kind}; a bundle holds only "
                            "regular files.")
        self._current = name
        self._left = info.size
        self._pad = -info.size % BLOCK
        return Member(name, info.size)

    def read(self, size: int = CHUNK) -> bytes:
        """Up to `size` bytes of the current member's data; b"" at its end."""
        if not self._left:
            return b""
        data = self._read_exact(min(size, self._left), f"the member {self._current!r}")
        self._left -= len(data)
        return data

    def chunks(self) -> Iterator[bytes]:
        while chunk := self.read():
            yield chunk

    def skip(self) -> None:
        while self.read():
            pass
        if self._pad:
            self._read_exact(self._pad, f"the padding of {self._current!r}")
            self._pad = 0

    def finish(self) -> None:
        """After the end marker: only zeros may follow (the second block and record padding)."""
        while chunk := self._stream.read(CHUNK):
            self.consumed += len(chunk)
            if chunk.count(0) != len(chunk):
                raise BadBundle("The bundle has data after its end-of-archive marker.")


def _shown(name: str) -> str:
    text = repr(name)
    return text if len(text) <= 90 else text[:87] + "..."
