"""One sync of one mirror: ask the upstream what it publishes, fetch only the missing files, then
import through the one import path (app/fleet/importer.py) with origin kind "mirror".

In order:
1. the manifest, conditionally (If-None-Match with the ETag of the last one applied): an
   unchanged upstream costs one 304;
2. `ImportSession` parses it and checks its signature and the policy before any byte is fetched;
   it also says which files the store lacks (a version already here, e.g. after a rollback on
   the central box, needs no download);
3. each missing file is fetched into `mirror-parts/<mirror id>/<sha256>.part` in the data dir,
   resuming a cut transfer with Range (bytes already there are never fetched again), then its
   size and hash are checked; a file that does not match is deleted, nothing is applied;
4. inspection, policy and the all-or-nothing commit, which also moves the aliases the manifest
   carries: the revision bump makes inference load the new version beside the old one and swap.
Nothing here deletes a local version: an upstream that drops one changes nothing on this box.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.config import Paths
from app.errors import ModelDepotError
from app.fleet.importer import ImportOptions, ImportReport, ImportSession
from app.fleet.upstream import Upstream, is_mlflow
from app.formats.sandbox import SandboxLimits
from app.store import Store
from app.store.imports import present_version
from app.store.mirrors import MirrorRecord

log = logging.getLogger(__name__)
_MIRROR_ID = re.compile(r"[0-9a-f]{8}")
PARTS = "mirror-parts"


@dataclass(frozen=True)
class SyncPolicy:
    require_signed: bool
    sandbox: SandboxLimits
    max_bytes: int = 2 << 30  # an MLflow model folder, all files (setting max_upload_bytes)


@dataclass
class SyncResult:
    etag: str | None
    changed: bool  # False: the upstream answered 304
    applied: list[dict[str, Any]] | None = None  # what the mirror's refs now point at here
    report: ImportReport | None = None
    bytes_pulled: int = 0


class SyncError(ModelDepotError):
    """A sync that applied nothing; `bytes_pulled` still counts what arrived."""

    def __init__(self, message: str, code: str, bytes_pulled: int) -> None:
        super().__init__(message, code=code)
        self.bytes_pulled = bytes_pulled


def parts_dir(paths: Paths, mirror_id: str) -> Path:
    """Where a mirror keeps partial downloads between attempts (startup reconciliation empties
    tmp/, so they live beside it). The id is ours (hex), checked again before it names a path."""
    if not _MIRROR_ID.fullmatch(mirror_id):
        raise ValueError(f"not a mirror id: {mirror_id!r}")
    return paths.home / PARTS / mirror_id


def forget_parts(paths: Paths, mirror_id: str) -> None:
    shutil.rmtree(parts_dir(paths, mirror_id), ignore_errors=True)


def sync_mirror(store: Store, mirror: MirrorRecord, upstream: Upstream, policy: SyncPolicy,
                on_new_version: Callable[[ImportReport], None] | None = None) -> SyncResult:
    """Bring the box to what the upstream publishes for the mirror's refs. Raises SyncError
    (nothing applied) for anything that stops it."""
    try:
        published = upstream.resolve(mirror.models, mirror.etag)
        if published is None:
            return SyncResult(mirror.etag, changed=False)
        options = ImportOptions(trust=mirror.trust, require_signed=policy.require_signed,
                                kind=published.kind, upstream=upstream.url,
                                sandbox=policy.sandbox, origins=published.origins)
        session = ImportSession(store, store.paths, published.manifest, published.signature,
                                options)
        try:
            folder = parts_dir(store.paths, mirror.id)
            for sha in sorted(session.wanted):
                part = folder / f"{sha}.part"
                folder.mkdir(parents=True, exist_ok=True)
                upstream.fetch(sha, session.manifest.blobs[sha], part)
                # A link for the session (the commit renames it into the blob store): the
                # verified part stays until the commit, so a failed inspection or a stop
                # before it never costs a second download.
                linked = store.blobs.tmp / f"mirror-{mirror.id}-{sha}"
                linked.unlink(missing_ok=True)
                os.link(part, linked)
                try:
                    session.accept_file(sha, linked)
                except BaseException:
                    part.unlink(missing_ok=True)  # bytes that do not match: fetch afresh
                    raise
            session.skip_unneeded()
            report = session.finish()
        finally:
            session.discard()
        forget_parts(store.paths, mirror.id)
    except ModelDepotError as exc:
        raise SyncError(_explained(exc, mirror), exc.code, upstream.pulled) from exc
    except OSError as exc:  # the data dir's own trouble (disk full, permissions): say so
        raise SyncError(f"This box could not write the files it fetched: {exc}.",
                        "storage_error", upstream.pulled) from exc
    finally:
        upstream.close()
    pulled = upstream.pulled
    if on_new_version is not None and report.new_versions:
        on_new_version(report)
    applied = _applied(store, session)
    log.info("mirror %s from %s: %d added, %d aliases moved, %d bytes pulled", mirror.id,
             upstream.url, len(report.added), len(report.aliases), pulled)
    return SyncResult(published.etag, True, applied, report, pulled)


def _applied(store: Store, session: ImportSession) -> list[dict[str, Any]]:
    """Each alias the manifest carries (or each version, for a ref by number) and the local
    version it now names."""
    applied = []
    for model in session.manifest.models:
        by_number = {v.version: v for v in model.versions}
        named = model.aliases.items() or [(None, v.version) for v in model.versions]
        for alias, number in named:
            entry = by_number[number]
            applied.append({"model": model.name, "alias": alias,
                            "version": present_version(store, model.name, entry.sha256),
                            "upstream_version": number, "sha256": entry.sha256})
    return applied


def _explained(exc: ModelDepotError, mirror: MirrorRecord) -> str:
    """The error, with how to allow what a mirror's own setting refuses."""
    if exc.code == "trust_required":
        keys = "" if is_mlflow(mirror.upstream) else \
            ", or trust its publisher's signing key with `modeldepot keys trust`"
        return (f"{exc.message} To accept pickles from this upstream, add the mirror again "
                f"with --trust (`modeldepot mirror rm {mirror.id}`, then `modeldepot mirror add "
                f"{mirror.upstream} ... --trust`){keys}.")
    if exc.code == "unsigned_bundle" and is_mlflow(mirror.upstream):
        return ("This box imports only models signed by a trusted publisher (setting "
                "require_signed_imports), and an MLflow registry signs nothing: turn the "
                "setting off to follow one.")
    return exc.message
