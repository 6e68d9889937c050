"""Recognise and stream-decompress compressed joblib files, with a cap on the output size.

joblib.dump(compress=...) writes one compressed stream and no header of its own: zlib for
compress=True or a number (its default), gzip, bz2, xz or legacy lzma when named. The whole
pickle is inside, so the scan reads it through a decompressor instead of the raw file.
"""

from __future__ import annotations

import io
import zlib
from typing import BinaryIO

from app.errors import InvalidModelFile, UnsafeModel

_CHUNK = 1 << 16

ZLIB_SECOND_BYTES = (0x01, 0x5E, 0x9C, 0xDA)


def compression_of(head: bytes) -> str | None:
    """The compressor that wrote a file starting with `head`, or None for a plain file."""
    if len(head) >= 2 and head[0] == 0x78 and head[1] in ZLIB_SECOND_BYTES:
        return "zlib"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh") and head[3:4].isdigit():
        return "bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"\x5d\x00\x00"):
        # Legacy .lzma ("alone") header: properties byte 0x5d then a little-endian dictionary size.
        return "lzma"
    return None


class _ZlibReader(io.RawIOBase):
    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._inflate = zlib.decompressobj()
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            if self._inflate.eof:
                return 0
            # The output limit leaves input behind in unconsumed_tail; feed it back first.
            data = self._inflate.unconsumed_tail or self._raw.read(_CHUNK)
            if not data:
                raise EOFError("compressed stream ended early")
            self._pending = self._inflate.decompress(data, _CHUNK)
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


class CappedReader(io.RawIOBase):
    """Reads from `inner` and refuses to produce more than `limit` bytes (decompression bombs)."""

    def __init__(self, inner: BinaryIO, limit: int) -> None:
        self._inner = inner
        self._left = limit
        self._limit = limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        try:
            data = self._inner.read(min(len(buffer), _CHUNK))
        except (EOFError, OSError, zlib.error, ValueError) as exc:
            raise InvalidModelFile(
                "The compressed model file is damaged or truncated; write it again with "
                "joblib.dump."
            ) from exc
        if len(data) > self._left:
            raise UnsafeModel(
                f"The compressed model file expands to more than {self._limit} bytes, which is "
                "over the limit; send it uncompressed or raise the limit."
            )
        self._left -= len(data)
        buffer[: len(data)] = data
        return len(data)


def open_decompressed(raw: BinaryIO, kind: str, limit: int) -> BinaryIO:
    """A buffered reader over the decompressed content of `raw` (compressed with `kind`)."""
    import bz2
    import gzip
    import lzma

    inner: BinaryIO
    if kind == "zlib":
        inner = io.BufferedReader(_ZlibReader(raw))
    elif kind == "gzip":
        inner = gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[assignment]
    elif kind == "bz2":
        inner = bz2.BZ2File(raw, mode="rb")  # type: ignore[assignment]
    elif kind in ("xz", "lzma"):
        inner = lzma.LZMAFile(raw, mode="rb")  # type: ignore[assignment]
    else:  # pragma: no cover - compression_of only returns the kinds above
        raise InvalidModelFile(f"Compression {kind!r} is not supported.")
    return io.BufferedReader(CappedReader(inner, limit), buffer_size=_CHUNK)
