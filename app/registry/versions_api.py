"""Routes for versions (upload, list, show, update, delete, download) and aliases."""

from __future__ import annotations

import logging

from flask import Response, request, send_file

from app.registry.api import ApiBlueprint, json_body, json_response, parse_model
from app.registry.context import registry
from app.registry.models_api import query_flag, query_int
from app.registry.schemas import (
    AliasPut,
    Deleted,
    UploadForm,
    Version,
    VersionMetadata,
    VersionPage,
    VersionPatch,
)
from app.registry.services import receive_model_file, store_upload
from app.store.names import check_alias, check_description, check_name, check_tags

log = logging.getLogger(__name__)
api = ApiBlueprint("versions", "/api/v1")
EXTENSIONS = {"skops": "skops", "onnx": "onnx", "pickle": "joblib", "mlflow": "zip"}


@api.route("POST", "/models/<name>/versions", "Upload a model file as a new version",
           body=UploadForm, response=Version, status=201, content_type="multipart/form-data")
def upload_version(name: str) -> Response:
    reg = registry()
    check_name(name)
    upload = receive_model_file()
    try:
        raw_meta = upload.fields.get("metadata")
        meta = parse_model(VersionMetadata, raw_meta, "metadata") if raw_meta else VersionMetadata()
        record = store_upload(name, upload, meta, reg.policy.token_presented(request.headers))
    finally:
        upload.discard()
    return json_response(record.to_dict(), 201)


@api.route("GET", "/models/<name>/versions", "List a model's versions, newest first",
           response=VersionPage, query=("limit", "page_token"))
def list_versions(name: str) -> Response:
    records, token = registry().store.list_versions(
        name, limit=query_int("limit"), page_token=request.args.get("page_token")
    )
    return json_response({"versions": [r.to_dict() for r in records], "next_page_token": token})


@api.route("GET", "/models/<name>/versions/<version>",
           "Show a version (number, 'latest' or alias)", response=Version)
def get_version(name: str, version: str) -> Response:
    return json_response(registry().store.get_version(name, version).to_dict())


@api.route("POST", "/models/<name>/versions/<version>/verify",
           "Hash the version's file again: a mismatch marks it corrupt (not served), a match "
           "makes a corrupt version ready again", response=Version)
def verify_version(name: str, version: str) -> Response:
    from app.store.doctor import verify_version as verify

    return json_response(verify(registry().store, name, version).to_dict())


@api.route("PATCH", "/models/<name>/versions/<version>", "Change a version's description or tags",
           body=VersionPatch, response=Version)
def patch_version(name: str, version: str) -> Response:
    body = json_body(VersionPatch)
    record = registry().store.update_version(
        name,
        version,
        description=check_description(body.description) if body.description is not None else None,
        tags=check_tags(body.tags) if body.tags is not None else None,
    )
    return json_response(record.to_dict())


@api.route("DELETE", "/models/<name>/versions/<version>",
           "Delete a version and free its file (409 while aliased)", response=Deleted,
           query=("force",))
def delete_version(name: str, version: str) -> Response:
    freed = registry().store.delete_version(name, version, force=query_flag("force"))
    return json_response({"deleted": True, "freed_bytes": freed})


@api.route("GET", "/models/<name>/versions/<version>/artifact",
           "Download the stored file (ETag = sha256; Range and If-Range resume a cut download)",
           content_type="application/octet-stream")
def download_artifact(name: str, version: str) -> Response:
    store = registry().store
    record = store.get_version(name, version)
    path = store.blob_path(record)
    response = send_file(
        path,
        mimetype="application/octet-stream",
        as_attachment=True,
        download_name=f"{record.model}-{record.version}.{EXTENSIONS.get(record.format, 'bin')}",
        etag=record.sha256 or False,
        conditional=True,
        max_age=0,
    )
    return response


@api.route("PUT", "/models/<name>/aliases/<alias>", "Point an alias at a version",
           body=AliasPut, response=Version)
def put_alias(name: str, alias: str) -> Response:
    check_alias(alias)
    body = json_body(AliasPut)
    record = registry().store.set_alias(name, alias, body.version)
    log.info("alias %s@%s -> version %d", name, alias, record.version)
    return json_response(record.to_dict())


@api.route("DELETE", "/models/<name>/aliases/<alias>", "Remove an alias", response=Deleted)
def delete_alias(name: str, alias: str) -> Response:
    registry().store.delete_alias(name, alias)
    return json_response({"deleted": True, "freed_bytes": 0})
