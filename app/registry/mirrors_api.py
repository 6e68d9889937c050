"""Routes for mirrors (docs/mirrors.md): add, list, show, remove, sync now. The work is in
app/fleet (mirror.py, mirror_loop.py); the rows in app/store/mirrors.py."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, current_app
from pydantic import BaseModel, Field

from app.errors import BadRequest
from app.fleet.mirror import SyncPolicy, forget_parts
from app.fleet.mirror_loop import MirrorLoop
from app.fleet.upstream import check_upstream_url
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
    upstream: str = Field(description="http(s)://host:port of the central ModelDepot registry")
    models: list[str] = Field(description="name@ref to follow, e.g. churn@production")
    every_s: float = Field(default=60.0, description="Seconds between syncs (1 s to a week)")
    trust: bool = Field(default=False, description="Accept pickles from this upstream (they run "
                        "code when loaded); a trusted publisher key stands for it too")
    token: str | None = Field(default=None, description="The upstream's API token, if its "
                              "reads need one; never shown again")


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
    policy = SyncPolicy(reg.settings.require_signed_imports, sandbox_limits(reg.settings))
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


def check_refs(refs: list[str]) -> list[str]:
    """`name@ref` each: a mirror follows a named version or alias, never a whole model."""
    if not refs or len(refs) > MAX_REFS:
        raise BadRequest(f"Field 'models' needs 1 to {MAX_REFS} refs like churn@production.",
                         code="invalid_models")
    for ref in refs:
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


@api.route("POST", "/mirrors", "Follow models of another ModelDepot (syncs at once)",
           body=MirrorAdd, response=MirrorOut, status=201)
def add_mirror() -> Response:
    body = json_body(MirrorAdd)
    if not MIN_EVERY_S <= body.every_s <= MAX_EVERY_S:
        raise BadRequest(f"Field 'every_s' must be between {MIN_EVERY_S:g} and "
                         f"{MAX_EVERY_S:g} seconds.", code="invalid_interval")
    record = _mirrors().add(NewMirror(check_upstream_url(body.upstream), check_refs(body.models),
                                      body.every_s, body.trust, body.token or None))
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
