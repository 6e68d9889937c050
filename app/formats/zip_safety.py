"""Check every member of a zip before reading any, and read members in memory with caps.

Members are never extracted to disk, but names are still checked: a model zip with "../" or
an absolute name is hostile, and refusing it keeps the stored artifact safe for whoever
extracts it later. Sizes and ratios are checked from the central directory and enforced
again while decompressing, since the directory can lie.
"""

from __future__ import annotations

import io
import re
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from app.errors import InvalidModelFile, UnsafeModel

_CHUNK = 1 << 20
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class ZipLimits:
    """What an archive (or a compressed joblib file) may expand to, so that a small upload
    cannot claim much memory: each member within `max_ratio` of its compressed size, and all
    members together within `max_ratio` of the archive's size, each past a small floor, and
    never past `max_total_bytes`. A 400 KB file may claim at most 40 MB (16 MiB below 160 KB),
    however its members are cut."""

    # skops writes several members per tree: a 2,000-tree forest has about 10,000. A member's
    # directory entry takes at least 46 bytes of the archive, so its size bounds this too.
    max_members: int = 50_000
    max_total_bytes: int = 4 << 30
    max_ratio: float = 100.0
    # Small members (text files) may compress far better than models; only check the
    # ratio of members whose uncompressed size passes this floor.
    ratio_floor_bytes: int = 1 << 20
    # What all the members together may reach whatever the archive's size: many members each
    # under the floor above must not add up to gigabytes.
    total_floor_bytes: int = 16 << 20

    def member_cap(self, compressed_size: int) -> int:
        """How far one member of `compressed_size` bytes may expand."""
        return max(self.ratio_floor_bytes, int(self.max_ratio * max(compressed_size, 1)))

    def expansion_cap(self, compressed_size: int) -> int:
        """How far a whole archive or compressed file of `compressed_size` bytes may expand: the
        same rule for zip archives and compressed joblib files."""
        by_ratio = max(self.total_floor_bytes, int(self.max_ratio * max(compressed_size, 1)))
        return min(self.max_total_bytes, by_ratio)


def open_zip(path_or_file: str | Path | IO[bytes]) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path_or_file)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise InvalidModelFile("The zip archive is damaged or truncated.") from exc


def check_members(zf: zipfile.ZipFile, limits: ZipLimits) -> list[zipfile.ZipInfo]:
    """Refuse the whole archive (UnsafeModel) if any member is dangerous; return the members."""
    infos = zf.infolist()
    if len(infos) > limits.max_members:
        raise UnsafeModel(
            f"The zip archive has {len(infos)} members, more than the limit of "
            f"{limits.max_members}."
        )
    seen: set[str] = set()
    total = 0
    archive = _archive_size(zf)
    total_cap = limits.expansion_cap(archive)
    for info in infos:
        name = info.filename
        _check_name(name)
        if name in seen:
            raise UnsafeModel(f"The zip archive has two members named {name!r}.")
        seen.add(name)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise UnsafeModel(
                f"The zip archive member {name!r} is a symbolic link; links are refused."
            )
        if info.flag_bits & 0x1:
            raise UnsafeModel(f"The zip archive member {name!r} is encrypted.")
        if info.compress_size > archive:
            raise InvalidModelFile(
                f"The zip archive member {name!r} claims more compressed bytes than the archive "
                "holds: the archive is damaged."
            )
        total += info.file_size
        if total > limits.max_total_bytes:
            raise UnsafeModel(
                f"The zip archive expands to more than {limits.max_total_bytes} bytes, over the "
                "limit."
            )
        if total > total_cap:
            raise UnsafeModel(
                f"The zip archive's members expand to more than {limits.max_ratio:g} times the "
                f"archive's size (over {total_cap} bytes); it looks like a zip bomb."
            )
        if info.file_size > limits.member_cap(info.compress_size):
            raise UnsafeModel(
                f"The zip archive member {name!r} expands more than {limits.max_ratio:g} times; "
                "it looks like a zip bomb."
            )
    return infos


def _archive_size(zf: zipfile.ZipFile) -> int:
    fp = zf.fp
    if fp is None:  # pragma: no cover - check_members is only given open archives
        raise InvalidModelFile("The zip archive is closed.")
    position = fp.tell()
    try:
        return fp.seek(0, io.SEEK_END)
    finally:
        fp.seek(position)


def _check_name(name: str) -> None:
    if (
        not name
        or "\x00" in name
        or "\\" in name
        or name.startswith("/")
        or _DRIVE.match(name)
        or ".." in name.split("/")
    ):
        raise UnsafeModel(
            f"The zip archive has a member named {name!r}, which points outside the archive; "
            "names must be relative and stay inside it."
        )


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limits: ZipLimits) -> bytes:
    """The member's bytes, read in memory; stops past its declared size or the ratio cap."""
    cap = min(info.file_size, limits.member_cap(info.compress_size))
    parts: list[bytes] = []
    size = 0
    try:
        with zf.open(info) as member:
            while True:
                chunk = member.read(_CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if size > cap:
                    raise UnsafeModel(
                        f"The zip archive member {info.filename!r} expands beyond its declared "
                        "size or the ratio limit."
                    )
                parts.append(chunk)
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, ValueError,
            zlib.error) as exc:
        raise InvalidModelFile(
            f"The zip archive member {info.filename!r} is damaged or uses an unsupported "
            "compression."
        ) from exc
    return b"".join(parts)
