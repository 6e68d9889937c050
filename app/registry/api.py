"""Route registration that also writes the OpenAPI document, and JSON request parsing.

Each view is declared once with its body and response models; the same declaration registers the
Flask route and its OpenAPI operation, so the document cannot drift from the routes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from flask import Blueprint, Response, request
from pydantic import BaseModel

from app.errors import BadRequest, PayloadTooLarge, Unprocessable, UnsupportedMediaType
from app.validation import validate

M = TypeVar("M", bound=BaseModel)
MAX_JSON_BYTES = 1 << 20
_FLASK_PARAM = re.compile(r"<(?:[a-z]+:)?([a-z_]+)>")


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status=status, headers=headers, mimetype="application/json")


def json_object(raw: bytes, what: str = "body") -> dict[str, Any]:
    """`raw` parsed as a JSON object: 400 if it is not JSON, 422 if not an object."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(
            f"The {what} is not valid JSON: {exc.args[0]}.", code="invalid_json"
        ) from exc
    if not isinstance(data, dict):
        raise Unprocessable(f"The {what} must be a JSON object.")
    return data


def parse_model(model: type[M], raw: bytes, what: str = "body") -> M:
    return validate(model, json_object(raw, what))


def json_body(model: type[M]) -> M:
    """The request's JSON body as `model`: 415 for another content type, 413 if too big."""
    return parse_model(model, json_body_bytes())


def json_body_bytes() -> bytes:
    """The request's raw JSON body (415 for another content type, 413 if too big), for routes
    that look at one field before choosing the model (POST /jobs reads `kind` first)."""
    mimetype = request.mimetype
    if mimetype != "application/json":
        raise UnsupportedMediaType(
            f"This route takes application/json, not {mimetype or 'a body with no content type'}."
        )
    length = request.content_length
    if length is not None and length > MAX_JSON_BYTES:
        raise PayloadTooLarge(f"JSON bodies are limited to {MAX_JSON_BYTES} bytes.")
    raw: bytes = request.stream.read(MAX_JSON_BYTES + 1)
    if len(raw) > MAX_JSON_BYTES:
        raise PayloadTooLarge(f"JSON bodies are limited to {MAX_JSON_BYTES} bytes.")
    return raw


@dataclass
class Operation:
    method: str
    path: str
    summary: str
    body: type[BaseModel] | None
    response: type[BaseModel] | None
    status: int
    content_type: str = "application/json"
    query: tuple[str, ...] = ()
    writes: bool = False


@dataclass
class ApiBlueprint:
    """A Flask blueprint that remembers each route's contract for the OpenAPI document."""

    name: str
    prefix: str
    operations: list[Operation] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.blueprint = Blueprint(self.name, __name__, url_prefix=self.prefix)

    def route(
        self,
        method: str,
        path: str,
        summary: str,
        *,
        body: type[BaseModel] | None = None,
        response: type[BaseModel] | None = None,
        status: int = 200,
        content_type: str = "application/json",
        query: tuple[str, ...] = (),
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def register(view: Callable[..., Any]) -> Callable[..., Any]:
            endpoint = f"{view.__name__}"
            self.blueprint.add_url_rule(path, endpoint, view, methods=[method])
            self.operations.append(
                Operation(
                    method,
                    self.prefix + path,
                    summary,
                    body,
                    response,
                    status,
                    content_type,
                    query,
                    writes=method not in ("GET", "HEAD"),
                )
            )
            return view

        return register


def openapi_document(title: str, version: str, blueprints: list[ApiBlueprint]) -> dict[str, Any]:
    schemas: dict[str, Any] = {}

    def ref(model: type[BaseModel]) -> dict[str, str]:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
        return {"$ref": f"#/components/schemas/{model.__name__}"}

    error = {"content": {"application/json": {"schema": ref(_error_model())}}}
    paths: dict[str, Any] = {}
    for bp in blueprints:
        for op in bp.operations:
            path = _FLASK_PARAM.sub(r"{\1}", op.path)
            params = [
                {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                for n in _FLASK_PARAM.findall(op.path)
            ] + [{"name": q, "in": "query", "schema": {"type": "string"}} for q in op.query]
            success: dict[str, Any] = {"description": "Success"}
            if op.response is not None:
                success["content"] = {"application/json": {"schema": ref(op.response)}}
            elif op.content_type != "application/json":
                success["content"] = {
                    op.content_type: {"schema": {"type": "string", "format": "binary"}}
                }
            entry: dict[str, Any] = {
                "summary": op.summary,
                "operationId": f"{op.method.lower()}_{path}".replace("/", "_").strip("_"),
                "parameters": params,
                "responses": {
                    str(op.status): success,
                    "4XX": {"description": "Client error", **error},
                },
            }
            if op.body is not None:
                entry["requestBody"] = {
                    "required": True,
                    "content": {op.content_type: {"schema": ref(op.body)}},
                }
            if op.writes:
                entry["security"] = [{"bearer": []}]
            paths.setdefault(path, {})[op.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _error_model() -> type[BaseModel]:
    from app.registry.schemas import ErrorBody

    return ErrorBody
