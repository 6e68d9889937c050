"""Routes for mirrors (docs/mirrors.md): add, list, show, remove, sync now. The work is in
app/fleet (mirror.py, mirror_loop.py); the rows in app/store/mirrors.py."""

from __future__ import annotations

import base64
import logging
from typing import Any

from flask import Flask, Response, current_app
from pydantic import BaseModel, Field

from app.errors import BadRequest
from app.fleet.mirror import SyncPolicy, forget_parts
from app.fleet.mirror_loop import MirrorLoop
from app.fleet.mlflow_refs import check_mlflow_refs
from app.fleet.upstream import check_upstream_url, is_mlflow
from app.registry.api import ApiBlueprint, json_body, json_response
from app.registry.bundles_api import announce_new_versions
from app.registry.context import registry
from app.registry.schemas import Deleted
from app.registry.services import sandbox_limits
from app.store.mirrors import MirrorStore, NewMirror
from app.store.names import check_alias, check_name
from app.validation import Strict

log = logging.getLogger(__name__)
api = ApiBlueprint("mirrors", "/api/v1")
LOOP = "modeldepot_mirrors"
MIN_EVERY_S, MAX_EVERY_S = 1.0, 7 * 24 * 3600.0
MAX_REFS = 100


class MirrorAdd(Strict):
    upstream: str = Field(description="http(s)://host:port of the central ModelDepot registry, "
                          "or mlflow+http(s)://host:port of an MLflow tracking server")
    models: list[str] = Field(description="name@ref to follow, e.g. churn@production; from "
                              "MLflow name@alias, name@stage:Production or name@3")
    every_s: float = Field(default=60.0, description="Seconds between syncs (1 s to a week)")
    trust: bool = Field(default=False, description="Accept pickles from this upstream (they run "
                        "code when loaded); a trusted publisher key stands for it too")
    token: str | None = Field(default=None, description="The upstream's API token, if its "
                              "reads need one; never shown again")
    basic_auth: str | None = Field(default=None, description="user:password for an MLflow "
                                   "server behind HTTP basic auth (instead of a token); never "
                                   "shown again")


class MirrorOut(BaseModel):
    id: str
    upstream: str
    models: list[str]
    every_s: float
    trust: bool
    token: bool
    state: str
    last_success: str | None
    last_error: str | None
    lag_s: float | None
    applied: list[dict[str, Any]]
    failures: int
    bytes_pulled: int
    versions_applied: int


class MirrorList(BaseModel):
    mirrors: list[MirrorOut]


def create_loop(app: Flask) -> MirrorLoop:
    """The app's mirror loop (not started: serve_registry starts it, app/registry/server.py)."""
    reg = app.extensions["modeldepot"]
    policy = SyncPolicy(reg.settings.require_signed_imports, sandbox_limits(reg.settings),
                        reg.settings.max_upload_bytes)
    loop = MirrorLoop(reg.store, policy,
                      lambda report: announce_new_versions(reg.store, reg.runner, report))
    app.extensions[LOOP] = loop
    return loop


def mirror_loop_of(app: Flask) -> MirrorLoop:
    loop: MirrorLoop = app.extensions[LOOP]
    return loop


def mirror_loop() -> MirrorLoop:
    return mirror_loop_of(current_app)


def _mirrors() -> MirrorStore:
    return MirrorStore(registry().store.db)


def _some_refs(refs: list[str]) -> list[str]:
    if not refs or len(refs) > MAX_REFS:
        raise BadRequest(f"Field 'models' needs 1 to {MAX_REFS} refs like churn@production.",
                         code="invalid_models")
    return refs


def _mlflow_credential(body: MirrorAdd) -> str | None:
    """The Authorization header an MLflow mirror sends, kept whole in the mirror row's token
    (docs/security.md): MLflow servers take a bearer token or HTTP basic auth."""
    if body.token and body.basic_auth:
        raise BadRequest("Give an MLflow mirror a 'token' or a 'basic_auth', not both.",
                         code="invalid_credentials")
    if body.basic_auth:
        user, sep, _ = body.basic_auth.partition(":")
        if not sep or not user or any(c in body.basic_auth for c in "\r\n"):
            raise BadRequest("Field 'basic_auth' must be one line user:password.",
                             code="invalid_credentials")
        return "Basic " + base64.b64encode(body.basic_auth.encode()).decode("ascii")
    if body.token:
        if any(c in body.token for c in "\r\n"):
            raise BadRequest("Field 'token' must be one line.", code="invalid_credentials")
        return f"Bearer {body.token}"
    return None


def check_refs(refs: list[str]) -> list[str]:
    """`name@ref` each: a mirror follows a named version or alias, never a whole model."""
    for ref in _some_refs(refs):
        name, sep, version = ref.partition("@")
        check_name(name)
        if not sep or not version:
            raise BadRequest(f"Field 'models': {ref[:80]!r} names no version or alias; write "
                             "name@alias (or name@3, name@latest).", code="invalid_models")
        if not version.isdigit() and version != "latest":
            check_alias(version)
    return list(dict.fromkeys(refs))


@api.route("GET", "/mirrors", "List the upstreams this box follows, with their state",
           response=MirrorList)
def list_mirrors() -> Response:
    return json_response({"mirrors": [m.to_dict() for m in _mirrors().all()]})


@api.route("POST", "/mirrors", "Follow models of another ModelDepot or an MLflow registry "
           "(syncs at once)",
           body=MirrorAdd, response=MirrorOut, status=201)
def add_mirror() -> Response:
    body = json_body(MirrorAdd)
    if not MIN_EVERY_S <= body.every_s <= MAX_EVERY_S:
        raise BadRequest(f"Field 'every_s' must be between {MIN_EVERY_S:g} and "
                         f"{MAX_EVERY_S:g} seconds.", code="invalid_interval")
    upstream = check_upstream_url(body.upstream)
    if is_mlflow(upstream):
        refs, secret = check_mlflow_refs(_some_refs(body.models)), _mlflow_credential(body)
    else:
        if body.basic_auth:
            raise BadRequest("Field 'basic_auth' is for MLflow servers; a ModelDepot upstream "
                             "takes a 'token'.", code="invalid_credentials")
        refs, secret = check_refs(body.models), body.token or None
    record = _mirrors().add(NewMirror(upstream, refs, body.every_s, body.trust, secret))
    log.info("mirror %s added: %s from %s every %g s", record.id, ", ".join(record.models),
             record.upstream, record.every_s)
    mirror_loop().wake()
    return json_response(record.to_dict(), 201)


@api.route("GET", "/mirrors/<mirror_id>", "One mirror: state, last success, last error, applied",
           response=MirrorOut)
def get_mirror(mirror_id: str) -> Response:
    return json_response(_mirrors().get(mirror_id).to_dict())


@api.route("DELETE", "/mirrors/<mirror_id>",
           "Stop following (the versions it brought stay)", response=Deleted)
def delete_mirror(mirror_id: str) -> Response:
    _mirrors().remove(mirror_id)
    forget_parts(registry().settings.paths, mirror_id)
    log.info("mirror %s removed", mirror_id)
    return json_response({"deleted": True, "freed_bytes": 0})


@api.route("POST", "/mirrors/<mirror_id>/sync", "Sync now (202: the loop runs it)",
           response=MirrorOut, status=202)
def sync_mirror_now(mirror_id: str) -> Response:
    record = _mirrors().request_sync(mirror_id)
    mirror_loop().wake()
    return json_response(record.to_dict(), 202)
