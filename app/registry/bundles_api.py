"""Routes for bundles (export, manifest, import) and publisher keys; the work is in app/fleet."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Response, current_app, request
from werkzeug.http import parse_options_header

from app.config import Paths
from app.errors import PayloadTooLarge, UnsupportedMediaType
from app.fleet import keys
from app.fleet.export import build_bundle
from app.fleet.importer import CappedReader, ImportOptions, ImportReport, import_bundle
from app.fleet.tarstream import Readable
from app.intake import require_token_for_trust
from app.registry.api import ApiBlueprint, json_body, json_response
from app.registry.context import registry
from app.registry.models_api import query_flag
from app.registry.schemas import Deleted, ImportResult, KeyList, PublicKeyOut, TrustKey
from app.registry.services import sandbox_limits, upload_ticket
from app.registry.uploads import receive_upload
from app.store import Store
from app.training.hooks import queue_load_cache, version_ready
from app.training.runner import JobRunner

log = logging.getLogger(__name__)
api = ApiBlueprint("bundles", "/api/v1")
TAR_TYPES = ("application/x-tar", "application/octet-stream")
SETTING = "max_upload_bytes"


def export_refs() -> list[str]:
    return request.args.getlist("model")


@api.route("GET", "/bundles", "Export models as a bundle (a tar, streamed as it is written)",
           content_type="application/x-tar", query=("model", "sign"))
def export_bundle() -> Response:
    reg = registry()
    bundle = build_bundle(reg.store, reg.settings.paths, export_refs(),
                          sign=query_flag("sign", default=True))
    return Response(
        bundle.stream(reg.store.blobs), mimetype="application/x-tar", direct_passthrough=True,
        headers={"Content-Length": str(bundle.length()), "ETag": f'"{bundle.etag}"',
                 "Content-Disposition": 'attachment; filename="models.mdbundle"'},
    )


MAX_REMEMBERED = 1024
ETAGS = "modeldepot_manifest_etags"  # per app: refs -> ((revision, key stamp), ETag)


def _key_stamp(paths: Paths) -> int:
    try:
        return (keys.keys_dir(paths) / keys.PRIVATE_FILE).stat().st_mtime_ns
    except FileNotFoundError:
        return 0


@api.route("GET", "/bundles/manifest",
           "The manifest a bundle of these models would carry (signature in a header)",
           query=("model",))
def export_manifest() -> Response:
    reg = registry()
    refs = export_refs()
    # A fleet polls this: while nothing a manifest shows can have changed (the store's revision
    # and this box's key file are as they were), a repeated If-None-Match is answered 304 from
    # the ETag remembered for these refs, without building the manifest again.
    state = (reg.store.revision(), _key_stamp(reg.settings.paths))
    remembered: dict[tuple[str, ...], tuple[tuple[int, int], str]] = \
        current_app.extensions.setdefault(ETAGS, {})
    known = remembered.get(tuple(refs))
    if known is not None and known[0] == state and known[1] in request.headers.get(
            "If-None-Match", ""):
        return Response(status=304, headers={"ETag": known[1]})
    bundle = build_bundle(reg.store, reg.settings.paths, refs)
    etag = f'"{bundle.etag}"'
    if len(remembered) >= MAX_REMEMBERED:
        remembered.clear()
    remembered[tuple(refs)] = (state, etag)
    if etag in request.headers.get("If-None-Match", ""):
        return Response(status=304, headers={"ETag": etag})
    headers = {"ETag": etag}
    if bundle.signature is not None:
        headers["X-ModelDepot-Signature"] = base64.b64encode(bundle.signature).decode()
    return Response(bundle.manifest, mimetype="application/json", headers=headers)


@api.route("POST", "/bundles", "Import a bundle (tar body or multipart `file`): all or nothing",
           response=ImportResult, status=201, content_type="application/x-tar",
           query=("dry_run", "trust", "aliases"))
def import_route() -> Response:
    reg = registry()
    options = ImportOptions(dry_run=query_flag("dry_run"), trust=query_flag("trust"),
                            aliases=query_flag("aliases", default=True),
                            require_signed=reg.settings.require_signed_imports,
                            sandbox=sandbox_limits(reg.settings))
    require_token_for_trust(options.trust, reg.policy.token_presented(request.headers))
    with bundle_body() as stream:
        report = run_import(stream, options)
    return json_response(report.to_dict(), 200 if options.dry_run else 201)


def run_import(stream: Readable, options: ImportOptions) -> ImportReport:
    """Import, then start what a new version sets off (its twin build, unless one travelled)."""
    reg = registry()
    capped = CappedReader(stream, reg.settings.max_upload_bytes, SETTING)
    report = import_bundle(capped, reg.store, reg.settings.paths, options)
    announce_new_versions(reg.store, reg.runner, report)
    return report


def announce_new_versions(store: Store, runner: JobRunner, report: ImportReport) -> None:
    """What a new version sets off, for each version an import added, bundles and mirrors alike:
    its compile job (twin build and load cache), or where its twin travelled with it, the load
    cache alone (load caches do not travel: they are this box's library versions' own)."""
    for model, number, twin_travelled in report.new_versions:
        version = store.get_version(model, number)
        if twin_travelled:
            queue_load_cache(runner, version)
        else:
            version_ready(store, runner, version)


@contextmanager
def bundle_body() -> Iterator[Readable]:
    """The request's bundle: the raw body, or a multipart `file` part received to a temp file."""
    limit = registry().settings.max_upload_bytes
    length = request.content_length
    mimetype, _ = parse_options_header(request.content_type or "")
    if mimetype in TAR_TYPES:
        if length is not None and length > limit:
            raise PayloadTooLarge(f"The bundle is larger than the limit of {limit} bytes "
                                  f"(setting {SETTING}).")
        yield request.stream
        return
    if mimetype != "multipart/form-data":
        raise UnsupportedMediaType(
            f"Send the bundle as application/x-tar or as a multipart 'file', not "
            f"{mimetype or 'a body with no content type'}.")
    upload = receive_upload(request.stream, request.content_type, length,
                            registry().store.blobs, limit=limit, setting=SETTING,
                            slots=registry().uploads, text_fields=(),
                            ticket=upload_ticket())
    try:
        with upload.temp.open("rb") as f:
            yield f
    finally:
        upload.discard()


# -- keys -----------------------------------------------------------------------------------


@api.route("GET", "/keys", "This box's public key and the publisher keys it trusts",
           response=KeyList)
def list_keys() -> Response:
    paths = registry().settings.paths
    own = keys.own_key(paths)
    return json_response({"key": own.to_dict() if own else None,
                          "trusted": [k.to_dict() for k in keys.trusted_keys(paths)]})


@api.route("POST", "/keys", "Trust a publisher's public key", body=TrustKey,
           response=PublicKeyOut, status=201)
def trust_key() -> Response:
    body = json_body(TrustKey)
    key = keys.trust_key(registry().settings.paths, body.key, body.name)
    log.info("trusting publisher key %s (%s)", key.name, key.key_id)
    return json_response(key.to_dict(), 201)


@api.route("GET", "/keys/<name>", "One trusted publisher key", response=PublicKeyOut)
def get_key(name: str) -> Response:
    return json_response(keys.trusted_key(registry().settings.paths, name).to_dict())


@api.route("DELETE", "/keys/<name>", "Stop trusting a publisher key", response=Deleted)
def delete_key(name: str) -> Response:
    key = keys.untrust_key(registry().settings.paths, name)
    log.info("no longer trusting publisher key %s (%s)", key.name, key.key_id)
    return json_response({"deleted": True, "freed_bytes": 0})
