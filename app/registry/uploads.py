"""Streaming multipart upload: the `file` part goes straight to a temp file in the data dir.

Werkzeug's own form parser spools files to the system temp dir; decoding the stream ourselves
with its sans-IO decoder writes each byte once, on the same file system as the blobs (so the
final rename is atomic), hashes as it goes, and stops at the size limit without reading on.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

from app.errors import BadRequest, PayloadTooLarge, Unprocessable, UnsupportedMediaType
from app.registry.admission import UploadSlots
from app.store.blobs import BlobStore

MAX_FIELD_BYTES = 1 << 20
MULTIPART_SLACK = 1 << 20  # part headers and text fields around the file
# The decoder refuses to buffer more than MAX_FIELD_BYTES (part headers, a preamble); what it holds
# between reads is at most a boundary's length, so a read must leave room for that. Smaller reads
# are also faster: the decoder deletes each consumed chunk from the front of its buffer.
READ_SIZE = 64 << 10


@dataclass
class ReceivedUpload:
    temp: Path
    sha256: str
    size: int
    filename: str | None
    fields: dict[str, bytes]
    slots: UploadSlots | None = field(default=None, repr=False)  # the slot this upload holds
    slot_taken_at: float | None = field(default=None, repr=False)

    def discard(self) -> None:
        """Remove the temp file (stored or not) and give the upload's slot back."""
        self.temp.unlink(missing_ok=True)
        slots, self.slots = self.slots, None
        if slots is not None:
            slots.give_back(self.slot_taken_at)

    def text(self, name: str) -> str | None:
        """A text field, stripped; None when absent or blank; 422 when it is not UTF-8."""
        raw = self.fields.get(name)
        if raw is None:
            return None
        try:
            return raw.decode("utf-8").strip() or None
        except UnicodeDecodeError as exc:
            raise Unprocessable(f"The form field {name!r} is not valid UTF-8.") from exc


def boundary_of(content_type: str | None) -> bytes:
    mimetype, options = parse_options_header(content_type or "")
    if mimetype != "multipart/form-data":
        raise UnsupportedMediaType(
            f"Uploads take multipart/form-data with a 'file' part, not {mimetype or 'no type'}."
        )
    boundary = options.get("boundary", "")
    if not boundary or len(boundary) > 200:
        raise BadRequest("The multipart body has no valid boundary.", code="invalid_multipart")
    return boundary.encode("latin-1")


def receive_upload(
    stream: IO[bytes],
    content_type: str | None,
    content_length: int | None,
    blobs: BlobStore,
    *,
    limit: int,
    setting: str,
    slots: UploadSlots,
    ticket: str | None = None,
    file_field: str = "file",
    text_fields: tuple[str, ...] = ("metadata",),
) -> ReceivedUpload:
    """Decode a multipart body; the file part is hashed into a temp file, others kept in memory.

    Over `limit` (the value of `setting`), whether the body says so up front or not: 413 naming
    the setting. An empty file is left to the format's own check, which says what it expected.
    The upload holds one of `slots` until its `discard()`; with none free for it (`ticket`: the
    place in line a refusal gave) it is refused (503) before anything is read or written.
    """
    if content_length is not None and content_length > limit + MULTIPART_SLACK:
        raise _too_large(limit, setting)
    taken_at = slots.take(ticket)
    try:
        upload = _receive(stream, content_type, blobs, limit, setting, file_field, text_fields)
    except BaseException:
        slots.give_back()
        raise
    upload.slots, upload.slot_taken_at = slots, taken_at
    return upload


def _receive(
    stream: IO[bytes],
    content_type: str | None,
    blobs: BlobStore,
    limit: int,
    setting: str,
    file_field: str,
    text_fields: tuple[str, ...],
) -> ReceivedUpload:
    decoder = MultipartDecoder(boundary_of(content_type), MAX_FIELD_BYTES, max_parts=16)
    events = _events(decoder, stream)
    fields: dict[str, bytes] = {}
    received: tuple[Path, str, int] | None = None
    filename: str | None = None
    try:
        for event in events:
            if isinstance(event, File) and event.name == file_field:
                if received is not None:
                    raise Unprocessable(f"Send exactly one '{file_field}' part.")
                filename = event.filename
                try:
                    received = blobs.receive(_part_data(events), limit)
                except OverflowError as exc:
                    raise _too_large(limit, setting) from exc
            elif isinstance(event, Field | File):
                if event.name not in text_fields or event.name in fields:
                    raise Unprocessable(
                        f"Unexpected form part {event.name[:60]!r}: send '{file_field}' and "
                        f"optionally {', '.join(repr(f) for f in text_fields)}, once each."
                    )
                fields[event.name] = b"".join(_part_data(events, MAX_FIELD_BYTES))
            elif isinstance(event, Epilogue):
                break
    except ValueError as exc:  # the decoder's word for a malformed body
        if received is not None:
            received[0].unlink(missing_ok=True)
        raise BadRequest(f"The multipart body is malformed: {exc}.",
                         code="invalid_multipart") from exc
    except BaseException:
        if received is not None:
            received[0].unlink(missing_ok=True)
        raise
    if received is None:
        raise Unprocessable(f"The upload has no '{file_field}' part.", code="missing_file")
    temp, sha256, size = received
    return ReceivedUpload(temp, sha256, size, filename, fields)


def _too_large(limit: int, setting: str) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The upload is larger than the limit of {limit} bytes (setting {setting})."
    )


def _events(decoder: MultipartDecoder, stream: IO[bytes]) -> Iterator[object]:
    ended = False
    while True:
        event = decoder.next_event()
        if isinstance(event, NeedData):
            if ended:
                raise ValueError("the body ended early")
            chunk = stream.read(READ_SIZE)
            ended = not chunk
            decoder.receive_data(chunk or None)
            continue
        yield event
        if isinstance(event, Epilogue):
            return


def _part_data(events: Iterator[object], cap: int | None = None) -> Iterator[bytes]:
    """The data of the current part, up to its end."""
    total = 0
    for event in events:
        if not isinstance(event, Data):
            raise ValueError("the part ended without data")
        total += len(event.data)
        if cap is not None and total > cap:
            raise Unprocessable(f"A form field is larger than {cap} bytes.")
        yield event.data
        if not event.more_data:
            return
    raise ValueError("the body ended inside a part")
