"""Routes for models: create, list and search, show, update, delete."""

from __future__ import annotations

from flask import Response, request

from app.errors import BadRequest
from app.registry.api import ApiBlueprint, json_body, json_response
from app.registry.context import registry
from app.registry.schemas import Deleted, Model, ModelCreate, ModelPage, ModelPatch
from app.store.names import check_description, check_name, check_tags

api = ApiBlueprint("models", "/api/v1")


def query_int(name: str) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isascii() or not raw.isdigit():
        raise BadRequest(f"Query parameter {name} must be a whole number.")
    return int(raw)


def query_flag(name: str, default: bool = False) -> bool:
    raw = request.args.get(name, "true" if default else "false").lower()
    if raw not in ("true", "false", "1", "0"):
        raise BadRequest(f"Query parameter {name} must be true or false.")
    return raw in ("true", "1")


def tag_filters() -> list[tuple[str, str]]:
    pairs = []
    for raw in request.args.getlist("tag"):
        key, sep, value = raw.partition(":")
        if not sep:
            raise BadRequest("A tag filter looks like tag=key:value.")
        pairs.append((check_name(key, "tag key"), value))
    return pairs


@api.route("GET", "/models", "List and search models", response=ModelPage,
           query=("q", "tag", "limit", "page_token"))
def list_models() -> Response:
    q = request.args.get("q") or None
    if q is not None and len(q) > 256:
        raise BadRequest("The search text q is limited to 256 characters.")
    records, token = registry().store.list_models(
        q=q, tags=tag_filters(), limit=query_int("limit"), page_token=request.args.get("page_token")
    )
    return json_response({"models": [r.to_dict() for r in records], "next_page_token": token})


@api.route("POST", "/models", "Create a model", body=ModelCreate, response=Model, status=201)
def create_model() -> Response:
    body = json_body(ModelCreate)
    record = registry().store.create_model(
        check_name(body.name), check_description(body.description), check_tags(body.tags)
    )
    return json_response(record.to_dict(), 201)


@api.route("GET", "/models/<name>", "Show a model with its aliases and latest version",
           response=Model)
def get_model(name: str) -> Response:
    return json_response(registry().store.get_model(name).to_dict())


@api.route("PATCH", "/models/<name>", "Change a model's description or tags", body=ModelPatch,
           response=Model)
def patch_model(name: str) -> Response:
    body = json_body(ModelPatch)
    record = registry().store.update_model(
        name,
        description=check_description(body.description) if body.description is not None else None,
        tags=check_tags(body.tags) if body.tags is not None else None,
    )
    return json_response(record.to_dict())


@api.route("DELETE", "/models/<name>", "Delete a model and its files (409 while aliased)",
           response=Deleted, query=("force",))
def delete_model(name: str) -> Response:
    freed = registry().store.delete_model(name, force=query_flag("force"))
    return json_response({"deleted": True, "freed_bytes": freed})
