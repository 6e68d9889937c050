"""The one import path: manifest, signature and policy, files, inspection, one commit.

An `ImportSession` is fed a manifest and its signature, then files by digest, then finished.
A bundle drives it from a tar stream (`import_bundle`); a mirror (app/fleet/mirror.py) drives
it with the files it fetches by hash (`accept_file`, `skip_unneeded`). In order:
1. the manifest is parsed and checked (manifest.py), and its signature verified against the
   trusted keys, before any file is written; policy refuses a bad signature or an untrusted key
   always, and an unsigned bundle when `require_signed_imports` is on;
2. each file is hashed while it is written to the store's temp dir, and only if the store needs
   it (a file the store holds, or that only versions already present use, is hashed, not kept);
3. each new version is inspected by content exactly like an upload (the manifest's format and
   signature never override what inspection finds); pickles follow the upload rules, a
   signature by a trusted key standing for `trust`;
4. versions, their travelled twins and aliases are committed in one transaction
   (app/store/imports.py). Any failure before that leaves nothing but temp files, which are
   removed here, or by startup reconciliation after a kill.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.config import Paths
from app.errors import ModelDepotError, PayloadTooLarge, Unprocessable
from app.fleet import keys
from app.fleet.manifest import (
    BLOB_PREFIX,
    MANIFEST_MEMBER,
    MAX_MANIFEST_BYTES,
    SIGNATURE_MEMBER,
    Manifest,
    ModelEntry,
    VersionEntry,
    parse_manifest,
)
from app.fleet.tarstream import BadBundle, Readable, TarReader
from app.formats.sandbox import SandboxLimits
from app.store import Store
from app.store.blobs import file_sha256
from app.store.imports import (
    ImportBatch,
    IncomingAlias,
    IncomingModel,
    IncomingTwin,
    IncomingVersion,
    commit_import,
    present_version,
)

log = logging.getLogger(__name__)
UNSIGNED = "unsigned"
MLFLOW = "mlflow"  # the origin kind of versions a mirror brought from an MLflow registry


class SignatureRefused(Unprocessable):
    code = "bad_signature"


@dataclass(frozen=True)
class ImportOptions:
    dry_run: bool = False
    trust: bool = False  # the caller's trust for pickles (the route checked it carries the token)
    aliases: bool = True
    require_signed: bool = False
    kind: str = "bundle"  # the origin's kind: bundle, mirror, mlflow
    upstream: str | None = None
    # More origin fields by "model@version", from the upstream (app/fleet/upstream.py)
    origins: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    sandbox: SandboxLimits = SandboxLimits()  # limits of the process that opens each file


@dataclass
class ImportReport:
    dry_run: bool
    publisher: dict[str, Any]
    added: list[dict[str, Any]] = field(default_factory=list)
    present: list[dict[str, Any]] = field(default_factory=list)
    aliases: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # (model, local version, twin travelled) of each added version, for the version-ready hook
    new_versions: list[tuple[str, int, bool]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "publisher": self.publisher, "added": self.added,
                "present": self.present, "aliases": self.aliases, "warnings": self.warnings}


def check_signature(paths: Paths, manifest: Manifest, raw: bytes, signature: bytes | None,
                    require_signed: bool) -> keys.PublicKey | None:
    """The trusted key that signed `raw`, or None for an unsigned bundle the policy accepts."""
    key_id = manifest.publisher.key
    if signature is None:
        if require_signed:
            raise SignatureRefused(
                "This bundle is not signed, and this box imports only bundles signed by a "
                "trusted publisher (setting require_signed_imports).", code="unsigned_bundle")
        return None
    if key_id is None:
        raise SignatureRefused(f"The bundle has a {SIGNATURE_MEMBER} but its manifest names no "
                               "publisher key (field 'publisher.key').")
    key = keys.trusted_by_id(paths, key_id)
    if key is None:
        raise SignatureRefused(
            f"The bundle is signed by key {key_id} (instance {manifest.publisher.instance!r}), "
            "which this box does not trust. If you know the publisher, add their public key "
            "with `modeldepot keys trust`.", code="untrusted_key")
    if not key.verify(signature, raw):
        raise SignatureRefused(
            f"{SIGNATURE_MEMBER} does not match {MANIFEST_MEMBER}: the manifest was changed "
            f"after {key.name!r} signed it, or the signature is damaged. Nothing was imported.")
    return key


class ImportSession:
    def __init__(self, store: Store, paths: Paths, raw_manifest: bytes,
                 signature: bytes | None, options: ImportOptions) -> None:
        self.store = store
        self.options = options
        self.manifest = parse_manifest(raw_manifest)
        self.signer = check_signature(paths, self.manifest, raw_manifest, signature,
                                      options.require_signed)
        self.trust = options.trust or self.signer is not None
        self.present: dict[tuple[str, int], int] = {}  # (model, bundle version) -> local number
        self.wanted: set[str] = set()
        self.received: dict[str, Path | None] = {}  # digest -> temp file (None: hashed only)
        self.served: list[Path] = []  # skops copies of pickles the sandbox made, until placed
        self._plan()

    @property
    def publisher(self) -> dict[str, Any]:
        p = self.manifest.publisher
        return {"instance": p.instance, "app_version": p.app_version,
                "key": self.signer.key_id if self.signer else None,
                "trusted_as": self.signer.name if self.signer else None}

    def _plan(self) -> None:
        """Which files the store must receive: those of versions it lacks (and their twins, when
        they travel) that it does not hold already."""
        for model in self.manifest.models:
            for v in model.versions:
                local = present_version(self.store, model.name, v.sha256)
                if local is not None:
                    self.present[(model.name, v.version)] = local
                    continue
                needed = [v.sha256] + ([v.twin.sha256] if v.twin and self.signer else [])
                self.wanted.update(sha for sha in needed if not self.store.blobs.exists(sha))

    def receive(self, member: str, size: int, chunks: Iterable[bytes]) -> None:
        """One file of the bundle, hashed as it passes; kept in the temp dir only if wanted."""
        sha = _blob_digest(member)
        if sha not in self.manifest.blobs:
            raise BadBundle(f"The member {member!r} is not listed in the manifest's blobs.")
        if sha in self.received:
            raise BadBundle(f"The member {member!r} appears twice.")
        if size != self.manifest.blobs[sha]:
            raise BadBundle(f"The member {member!r} has {size} bytes; the manifest says "
                            f"{self.manifest.blobs[sha]}.")
        if sha in self.wanted:
            temp, digest, _ = self.store.blobs.receive(iter(chunks))
            self.received[sha] = temp
        else:
            hasher = hashlib.sha256()
            for chunk in chunks:
                hasher.update(chunk)
            digest, temp = hasher.hexdigest(), None
            self.received[sha] = None
        if digest != sha:
            raise BadBundle(f"The member {member!r} does not match its sha256: the file was "
                            "damaged or changed after the manifest was written.")

    def accept_file(self, sha: str, path: Path) -> None:
        """A wanted file fetched by digest (a mirror): its size and hash checked, then the
        session owns `path` (a file in the data dir's file system, so the commit renames it).
        A file that does not match is removed and refused: tampered bytes are never applied."""
        if sha not in self.wanted:
            raise BadBundle(f"The file {sha[:12]}... is not one this import needs.")
        size = path.stat().st_size
        expected = self.manifest.blobs[sha]
        digest = file_sha256(path) if size == expected else None
        if digest != sha:
            path.unlink(missing_ok=True)
            what = f"{size} bytes where the manifest says {expected}" if digest is None else \
                "bytes that do not match its sha256"
            raise BadBundle(f"The file {sha[:12]}... arrived with {what}: it was damaged or "
                            "changed on the way. Nothing was applied.", code="bad_blob")
        self.received[sha] = path

    def skip_unneeded(self) -> None:
        """Files fetched by digest: those the store holds, or only present versions use, are
        not fetched at all (a bundle's stream must still pass them, `receive`)."""
        for sha in self.manifest.blobs:
            if sha not in self.wanted:
                self.received.setdefault(sha, None)

    def finish(self) -> ImportReport:
        missing = sorted(set(self.manifest.blobs) - set(self.received))
        if missing:
            raise BadBundle(f"The bundle lacks the member '{BLOB_PREFIX}{missing[0]}' that its "
                            "manifest lists.")
        report = ImportReport(self.options.dry_run, self.publisher)
        if self.signer is None:
            report.warnings.append(self._unsigned_note())
        versions = [self._incoming(m, v, report) for m in self.manifest.models
                    for v in m.versions if (m.name, v.version) not in self.present]
        aliases = [IncomingAlias(m.name, alias, _entry(m, number).sha256)
                   for m in self.manifest.models for alias, number in sorted(m.aliases.items())
                   ] if self.options.aliases else []
        batch = ImportBatch(
            models=[IncomingModel(m.name, m.description, m.tags) for m in self.manifest.models],
            versions=versions, aliases=aliases,
            files={sha: temp for sha, temp in self.received.items() if temp is not None},
            dry_run=self.options.dry_run,
        )
        self.received = {}  # commit_import consumes the temp files
        outcome = commit_import(self.store, batch)
        for incoming, number in outcome.added:
            report.added.append({"model": incoming.model, "version": number,
                                 "bundle_version": incoming.origin["version"],
                                 "sha256": incoming.sha256, "format": incoming.new.format,
                                 "twin": "travelled" if incoming.twin else "built here"})
            if not self.options.dry_run:
                report.new_versions.append((incoming.model, number, incoming.twin is not None))
        for incoming, number in outcome.present:
            self._report_present(report, incoming.model, incoming.origin["version"], number)
        for (model, bundle_version), number in self.present.items():
            self._report_present(report, model, bundle_version, number)
        report.aliases = outcome.aliases
        return report

    def _unsigned_note(self) -> str:
        instance = self.manifest.publisher.instance
        if self.options.kind == MLFLOW:
            return (f"MLflow registries sign nothing: these versions are as trustworthy as "
                    f"{instance!r} and the way to it; each version's origin names its run.")
        return (f"The bundle is unsigned: nobody vouches for its publisher ({instance!r}). "
                "Each imported version says so.")

    @staticmethod
    def _report_present(report: ImportReport, model: str, bundle_version: int,
                        number: int) -> None:
        report.present.append({"model": model, "version": number,
                               "bundle_version": bundle_version})

    def _file(self, sha: str) -> Path:
        temp = self.received.get(sha)
        return temp if temp is not None else self.store.blobs.path(sha)

    def _incoming(self, model: ModelEntry, v: VersionEntry,
                  report: ImportReport) -> IncomingVersion:
        from app.formats import Signature, inspect_upload
        from app.intake import new_version

        where = f"{model.name} version {v.version} ({BLOB_PREFIX}{v.sha256[:12]}...)"
        try:
            declared = Signature.from_dict(v.signature) if v.signature is not None else None
            inspection = inspect_upload(self._file(v.sha256), trust=self.trust, filename=None,
                                        declared_signature=declared,
                                        receive=self.store.blobs.receive,
                                        limits=self.options.sandbox)
        except ModelDepotError as exc:
            raise _named(exc, where) from exc
        if inspection.served is not None:
            self.served.append(inspection.served.temp)
        warnings: list[str] = []
        if inspection.format != v.format:
            warnings.append(f"The bundle called this a {v.format} file; its content is "
                            f"{inspection.format}, which is what it is stored as.")
        if self.signer is None and self.options.kind != MLFLOW:
            warnings.append(f"Imported from an unsigned bundle of "
                            f"{self.manifest.publisher.instance!r}: its publisher is unverified.")
        twin = None
        if v.twin is not None and self.signer is not None:
            twin = self._twin(v, where)
        elif v.twin is not None:
            warnings.append("Its ONNX twin did not travel (the bundle is unsigned); this box "
                            "builds and verifies its own.")
        report.warnings.extend(f"{model.name} version {v.version}: {w}"
                               for w in (*inspection.warnings, *warnings))
        origin = {"kind": self.options.kind,
                  "publisher_key": self.signer.key_id if self.signer else UNSIGNED,
                  "instance": self.manifest.publisher.instance, "model": model.name,
                  "version": v.version, "upstream": self.options.upstream,
                  **self.options.origins.get(f"{model.name}@{v.version}", {})}
        new = new_version(inspection, metrics=v.metrics, params=v.params,
                          description=v.description, tags=v.tags, source=v.source,
                          warnings=tuple(warnings))
        return IncomingVersion(model.name, v.sha256, v.size, new, origin, twin,
                               key=f"{model.name}@{v.version}")

    def _twin(self, v: VersionEntry, where: str) -> IncomingTwin:
        """A trusted publisher's verified twin, checked as an ONNX upload would be."""
        from app.formats import inspect_upload

        assert v.twin is not None
        try:
            inspection = inspect_upload(self._file(v.twin.sha256), trust=False, filename=None,
                                        receive=self.store.blobs.receive,
                                        limits=self.options.sandbox)
        except ModelDepotError as exc:
            raise _named(exc, f"the twin of {where}") from exc
        if inspection.format != "onnx":
            raise BadBundle(f"The twin of {where} is a {inspection.format} file, not ONNX.")
        return IncomingTwin(v.twin.sha256, v.twin.report)

    def discard(self) -> None:
        """Remove whatever temp files a failed import left."""
        for temp in self.received.values():
            if temp is not None:
                temp.unlink(missing_ok=True)
        for temp in self.served:
            temp.unlink(missing_ok=True)
        self.received, self.served = {}, []


def _entry(model: ModelEntry, number: int) -> VersionEntry:
    return next(v for v in model.versions if v.version == number)


def _named(exc: ModelDepotError, where: str) -> ModelDepotError:
    """The same error (class, status, code), its message saying which version it is about."""
    named = type(exc)(f"{where}: {exc.message}", code=exc.code)
    return named


def _blob_digest(member: str) -> str:
    if member.startswith("/") or ".." in member.split("/"):
        raise BadBundle(f"The member name {member[:100]!r} points outside the bundle; a "
                        "bundle's names are manifest.json, manifest.sig and blobs/<sha256>.")
    if not member.startswith(BLOB_PREFIX):
        raise BadBundle(f"Unexpected member {member[:100]!r}: after manifest.json and "
                        "manifest.sig a bundle holds only blobs/<sha256>.")
    return member.removeprefix(BLOB_PREFIX)


class CappedReader:
    """A stream that refuses to yield more than `limit` bytes (413 naming the setting)."""

    def __init__(self, stream: Readable, limit: int, setting: str) -> None:
        self._stream, self._left, self.limit, self.setting = stream, limit, limit, setting

    def read(self, size: int = -1, /) -> bytes:
        data = self._stream.read(size if size >= 0 else self._left + 1)
        self._left -= len(data)
        if self._left < 0:
            raise PayloadTooLarge(f"The bundle is larger than the limit of {self.limit} bytes "
                                  f"(setting {self.setting}).")
        return data


def import_bundle(stream: Readable, store: Store, paths: Paths,
                  options: ImportOptions) -> ImportReport:
    """Import a bundle read from `stream` (already capped by the caller)."""
    reader = TarReader(stream)
    first = reader.next()
    if first is None:
        raise BadBundle(f"The bundle is empty: it has no {MANIFEST_MEMBER}.")
    if first.name != MANIFEST_MEMBER:
        raise BadBundle(f"{MANIFEST_MEMBER} must be the bundle's first member; it starts with "
                        f"{first.name[:100]!r}.")
    if first.size > MAX_MANIFEST_BYTES:
        raise BadBundle(f"{MANIFEST_MEMBER} has {first.size} bytes; the limit is "
                        f"{MAX_MANIFEST_BYTES}.", code="manifest_too_large")
    raw = b"".join(reader.chunks())
    member = reader.next()
    signature = None
    if member is not None and member.name == SIGNATURE_MEMBER:
        if member.size != keys.SIGNATURE_BYTES:
            raise BadBundle(f"{SIGNATURE_MEMBER} has {member.size} bytes; an Ed25519 signature "
                            f"has {keys.SIGNATURE_BYTES}.")
        signature = b"".join(reader.chunks())
        member = reader.next()
    session = ImportSession(store, paths, raw, signature, options)
    try:
        while member is not None:
            if member.name in (MANIFEST_MEMBER, SIGNATURE_MEMBER):
                raise BadBundle(f"The member {member.name!r} appears again, or out of order "
                                f"({MANIFEST_MEMBER} first, then {SIGNATURE_MEMBER}).")
            session.receive(member.name, member.size, reader.chunks())
            member = reader.next()
        reader.finish()
        report = session.finish()
    finally:
        session.discard()
    log.info("bundle from %s%s: %d added, %d present, %d aliases moved",
             report.publisher["instance"], " (dry run)" if options.dry_run else "",
             len(report.added), len(report.present), len(report.aliases))
    return report
