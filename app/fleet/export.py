"""Export: choose versions by `name[@ref]`, write the manifest, sign it, stream the tar.

Nothing is staged: the archive is produced chunk by chunk from the blob files, so memory stays
flat whatever the size and the length is known before the first byte (Content-Length).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import orjson

from app.config import Paths
from app.errors import BadRequest
from app.fleet import keys
from app.fleet.manifest import (
    BLOB_PREFIX,
    MANIFEST_MEMBER,
    SIGNATURE_MEMBER,
    Selection,
    build_manifest,
)
from app.fleet.tarstream import (
    CHUNK,
    archive_length,
    end_of_archive,
    member_header,
    member_length,
    padding,
)
from app.store import ModelRecord, Store, VersionRecord
from app.store.blobs import BlobStore
from app.store.names import check_name

MAX_REFS = 1000


@dataclass(frozen=True)
class Bundle:
    manifest: bytes
    signature: bytes | None
    blobs: list[tuple[str, int]]  # (sha256, size), in archive order

    @property
    def etag(self) -> str:
        """Names what the bundle carries, not when it was written: created_at is left out, so a
        mirror polling with If-None-Match gets 304 until a version or alias changes."""
        content = orjson.loads(self.manifest)
        content.pop("created_at", None)
        return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()

    def length(self) -> int:
        sizes = [len(self.manifest), *([len(self.signature)] if self.signature else [])]
        return archive_length(sizes + [size for _, size in self.blobs])

    def stream(self, blobs: BlobStore) -> Iterator[bytes]:
        """The archive's bytes: manifest, signature, then each blob read in 1 MiB chunks."""
        written = 0
        small = [(MANIFEST_MEMBER, self.manifest)]
        if self.signature is not None:
            small.append((SIGNATURE_MEMBER, self.signature))
        for name, data in small:
            piece = member_header(name, len(data)) + data + padding(len(data))
            written += len(piece)
            yield piece
        for sha, size in self.blobs:
            yield member_header(BLOB_PREFIX + sha, size)
            yield from _file_chunks(blobs, sha, size)
            yield padding(size)
            written += member_length(size)
        yield end_of_archive(written)


def _file_chunks(blobs: BlobStore, sha: str, size: int) -> Iterator[bytes]:
    """Exactly `size` bytes of a blob: a file that changed under us breaks the stream (and the
    importer's hash check) rather than shifting every member after it."""
    left = size
    with blobs.path(sha).open("rb") as f:
        while left:
            chunk = f.read(min(CHUNK, left))
            if not chunk:
                raise OSError(f"blob {sha} is shorter than its recorded size")
            left -= len(chunk)
            yield chunk


def parse_refs(refs: list[str]) -> list[tuple[str, str | None]]:
    """`name` (every ready version) or `name@ref` (a number, `latest` or an alias)."""
    if not refs:
        raise BadRequest("Name at least one model to export: model=NAME or model=NAME@REF.",
                         code="missing_model")
    if len(refs) > MAX_REFS:
        raise BadRequest(f"At most {MAX_REFS} models per bundle.")
    parsed = []
    for ref in refs:
        name, sep, version = ref.partition("@")
        parsed.append((check_name(name), version if sep else None))
    return parsed


def select(store: Store, refs: list[str]) -> Selection:
    chosen: dict[str, tuple[ModelRecord, dict[int, VersionRecord]]] = {}
    for name, ref in parse_refs(refs):
        model = store.get_model(name)
        _, versions = chosen.setdefault(name, (model, {}))
        if ref is None:
            for record in _ready_versions(store, name):
                versions[record.version] = record
            continue
        record = store.get_version(name, ref)
        if record.status != "ready":
            raise BadRequest(f"Version {record.version} of {name!r} is {record.status}; only "
                             "ready versions travel.", code="not_ready")
        versions[record.version] = record
    return Selection([(m, [vs[n] for n in sorted(vs)]) for m, vs in chosen.values()])


def _ready_versions(store: Store, name: str) -> list[VersionRecord]:
    found: list[VersionRecord] = []
    token: str | None = None
    while True:
        page, token = store.list_versions(name, limit=1000, page_token=token)
        found.extend(r for r in page if r.status == "ready")
        if token is None:
            return found


def build_bundle(store: Store, paths: Paths, refs: list[str], *, sign: bool = True) -> Bundle:
    selection = select(store, refs)
    twins = {
        v.twin_sha256: store.blobs.path(v.twin_sha256).stat().st_size
        for _, versions in selection.models for v in versions
        if v.twin_status == "verified" and v.twin_sha256 and store.blobs.exists(v.twin_sha256)
    }
    pair = keys.load_private(paths) if sign else None
    own = pair[1] if pair is not None else None
    instance = own.name if own is not None else keys.default_key_name()
    manifest = build_manifest(selection, instance, own.key_id if own else None, twins)
    signature = pair[0].sign(manifest) if pair is not None else None
    # The manifest's blobs table is the one list of files (sorted by digest).
    blobs = orjson.loads(manifest)["blobs"]
    return Bundle(manifest, signature, list(blobs.items()))
