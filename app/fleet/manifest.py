"""The bundle manifest (docs/bundles.md): what a bundle carries, built from the store on export
and checked field by field on import, before any file is written.

Its exact bytes are what a publisher signs, so the importer keeps them as received; everything
the importer uses is validated here and errors name the field (`models[0].versions[1].sha256`).
Fields a version shows that this box does not use are kept in the manifest for people and for
newer boxes, and ignored on import.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app import __version__
from app.fleet.tarstream import BadBundle
from app.store.names import check_alias, check_description, check_name, check_tags
from app.store.records import ModelRecord, VersionRecord, iso

FORMAT = "modeldepot-bundle"
FORMAT_VERSION = 1
MAX_MANIFEST_BYTES = 8 << 20  # thousands of versions; read whole, so it must stay small
MANIFEST_MEMBER = "manifest.json"
SIGNATURE_MEMBER = "manifest.sig"
BLOB_PREFIX = "blobs/"
_SHA256 = r"^[0-9a-f]{64}$"
_SHA = re.compile(_SHA256)
# Version fields not carried: where it stands on this box, not what it is.
_LOCAL_FIELDS = ("model", "status", "status_message", "aliases", "updated_at", "dataset_id",
                 "origin")


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class TwinEntry(_Loose):
    status: str
    sha256: str = Field(pattern=_SHA256)
    report: dict[str, Any] = Field(default_factory=dict)


class VersionEntry(_Loose):
    version: int = Field(ge=1)
    sha256: str = Field(pattern=_SHA256)
    size: int = Field(ge=0)
    format: str = Field(max_length=64)
    format_detail: str = Field(default="", max_length=200)
    signature: dict[str, Any] | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    description: str = ""
    source: str = Field(default="upload", max_length=64)
    twin: TwinEntry | None = None


class ModelEntry(_Loose):
    name: str
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    aliases: dict[str, int] = Field(default_factory=dict)
    versions: list[VersionEntry]


class Publisher(_Loose):
    instance: str = Field(max_length=200)
    app_version: str = Field(max_length=64)
    key: str | None = Field(default=None, pattern=r"^[0-9a-f]{16}$")


class Manifest(_Loose):
    format: str
    format_version: int
    created_at: str = Field(max_length=64)
    publisher: Publisher
    models: list[ModelEntry]
    blobs: dict[str, int]

    def model_entry(self, name: str) -> ModelEntry:
        return next(m for m in self.models if m.name == name)


# -- export ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    """What an export carries: each model with the versions chosen from it."""

    models: list[tuple[ModelRecord, list[VersionRecord]]]


def version_entry(record: VersionRecord, with_twin: bool) -> dict[str, Any]:
    entry = {k: v for k, v in record.to_dict().items() if k not in _LOCAL_FIELDS}
    entry["twin"] = ({"status": "verified", "sha256": record.twin_sha256,
                      "report": record.twin_report} if with_twin else None)
    return entry


def build_manifest(selection: Selection, instance: str, key_id: str | None,
                   twin_sizes: dict[str, int]) -> bytes:
    """The manifest's bytes. `twin_sizes` holds the verified twins whose files are at hand."""
    models = []
    blobs: dict[str, int] = {}
    for model, versions in selection.models:
        numbers = {v.version for v in versions}
        entries = []
        for v in versions:
            assert v.sha256 is not None and v.size is not None  # ready versions have files
            blobs[v.sha256] = v.size
            travels = v.twin_status == "verified" and v.twin_sha256 in twin_sizes
            if travels and v.twin_sha256 is not None:
                blobs[v.twin_sha256] = twin_sizes[v.twin_sha256]
            entries.append(version_entry(v, travels))
        models.append({
            "name": model.name, "description": model.description, "tags": model.tags,
            "aliases": {a: n for a, n in model.aliases.items() if n in numbers},
            "versions": entries,
        })
    document = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "created_at": iso(time.time()),
        "publisher": {"instance": instance, "app_version": __version__, "key": key_id},
        "models": models, "blobs": blobs,
    }
    return orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


# -- import ---------------------------------------------------------------------------------


def parse_manifest(raw: bytes) -> Manifest:
    """The manifest's bytes as a checked Manifest: BadBundle naming the field otherwise."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadBundle(f"{MANIFEST_MEMBER} is not valid JSON: {exc.args[0]}.") from exc
    if not isinstance(data, dict):
        raise BadBundle(f"{MANIFEST_MEMBER} must hold a JSON object.")
    if data.get("format") != FORMAT:
        raise BadBundle(f"{MANIFEST_MEMBER}: field 'format' must be {FORMAT!r}; this is not a "
                        "ModelDepot bundle.")
    if data.get("format_version") != FORMAT_VERSION:
        raise BadBundle(
            f"{MANIFEST_MEMBER}: format_version {_short(data.get('format_version'))} is not one "
            f"this ModelDepot reads (it reads {FORMAT_VERSION}); import it with a newer "
            "ModelDepot.", code="unsupported_bundle_version")
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        raise BadBundle(f"{MANIFEST_MEMBER}: {_first_problem(exc)}") from exc
    _check_consistent(manifest)
    return manifest


def _first_problem(exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
    if err["type"] == "missing":
        return f"field '{where}' is required."
    return f"field '{where}': {err['msg']}."


def _check_consistent(manifest: Manifest) -> None:
    """Names valid and unique, aliases pointing into the bundle, blobs listed exactly once each
    with the sizes the versions give."""
    seen_models: set[str] = set()
    used: dict[str, int] = {}
    for i, model in enumerate(manifest.models):
        where = f"models[{i}]"
        _field(where + ".name", lambda m=model: check_name(m.name))
        _field(where + ".tags", lambda m=model: check_tags(m.tags))
        _field(where + ".description", lambda m=model: check_description(m.description))
        if model.name in seen_models:
            raise BadBundle(f"{MANIFEST_MEMBER}: model {model.name!r} is listed twice.")
        seen_models.add(model.name)
        numbers: set[int] = set()
        for j, v in enumerate(model.versions):
            vwhere = f"{where}.versions[{j}]"
            if v.version in numbers:
                raise BadBundle(f"{MANIFEST_MEMBER}: {vwhere}: version {v.version} of "
                                f"{model.name!r} is listed twice.")
            numbers.add(v.version)
            _field(vwhere + ".tags", lambda v=v: check_tags(v.tags))
            _field(vwhere + ".description", lambda v=v: check_description(v.description))
            _use(used, v.sha256, v.size, vwhere + ".size")
            if v.twin is not None:
                if v.twin.status != "verified":
                    raise BadBundle(f"{MANIFEST_MEMBER}: {vwhere}.twin.status must be "
                                    "'verified' (only verified twins travel).")
                _use(used, v.twin.sha256, manifest.blobs.get(v.twin.sha256, -1),
                     vwhere + ".twin.sha256")
        for alias, number in model.aliases.items():
            _field(f"{where}.aliases", lambda a=alias: check_alias(a))
            if number not in numbers:
                raise BadBundle(f"{MANIFEST_MEMBER}: {where}.aliases: {alias!r} points at "
                                f"version {number}, which the bundle does not carry.")
    for sha, size in manifest.blobs.items():
        if not _SHA.match(sha) or not isinstance(size, int) or size < 0:
            raise BadBundle(f"{MANIFEST_MEMBER}: blobs: {_short(sha)} is not a sha256 with a "
                            "size.")
        if sha not in used:
            raise BadBundle(f"{MANIFEST_MEMBER}: blobs: {sha} is listed but no version uses it.")
    for sha, size in used.items():
        if sha not in manifest.blobs:
            raise BadBundle(f"{MANIFEST_MEMBER}: blobs does not list {sha}, which a version "
                            "uses.")
        if manifest.blobs[sha] != size:
            raise BadBundle(f"{MANIFEST_MEMBER}: blobs gives {sha[:12]}... "
                            f"{manifest.blobs[sha]} bytes, a version says {size}.")


def _use(used: dict[str, int], sha: str, size: int, where: str) -> None:
    if used.setdefault(sha, size) != size:
        raise BadBundle(f"{MANIFEST_MEMBER}: {where}: file {sha[:12]}... is given two sizes.")


def _field(where: str, check: Any) -> None:
    try:
        check()
    except BadBundle:
        raise
    except Exception as exc:
        message = getattr(exc, "message", str(exc))
        raise BadBundle(f"{MANIFEST_MEMBER}: {where}: {message}") from exc


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
