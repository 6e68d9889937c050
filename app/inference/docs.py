"""/docs and /redoc from files bundled in the package: the machines this serves are offline.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, so they are switched off and replaced by
pages whose every asset is under /static (Swagger UI 5 and ReDoc 2 builds, licenses beside them).
The prediction routes live in the ASGI fast path, not in FastAPI's router, so their operations are
added to the OpenAPI document here from the pydantic models that describe their bodies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field

STATIC_DIR = Path(__file__).with_name("static")

SWAGGER_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} - API docs</title>
<link rel="stylesheet" href="/static/swagger-ui.css">
<link rel="icon" type="image/png" href="/static/favicon-32x32.png"></head>
<body><div id="swagger-ui"></div>
<script src="/static/swagger-ui-bundle.js"></script>
<script src="/static/swagger-init.js"></script></body></html>
"""

REDOC_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} - API reference</title>
<link rel="icon" type="image/png" href="/static/favicon-32x32.png"></head>
<body><redoc spec-url="/openapi.json" hide-download-button></redoc>
<script src="/static/redoc.standalone.js"></script></body></html>
"""


class DataframeSplit(BaseModel):
    columns: list[str]
    data: list[list[Any]]
    index: list[Any] | None = None


class V1PredictRequest(BaseModel):
    """Exactly one of instances, dataframe_split, dataframe_records or inputs."""

    model_config = ConfigDict(extra="forbid")
    instances: list[list[Any] | dict[str, Any]] | None = Field(
        None, examples=[[[5.1, 3.5, 1.4, 0.2]]])
    dataframe_split: DataframeSplit | None = None
    dataframe_records: list[dict[str, Any]] | None = None
    inputs: list[list[Any] | dict[str, Any]] | dict[str, list[Any]] | None = None
    proba: bool = False


class V1PredictResponse(BaseModel):
    model: str
    version: int
    predictions: list[Any]
    probabilities: list[list[float]] | None = None


class V2Tensor(BaseModel):
    name: str = Field(examples=["input"])
    shape: list[int] = Field(examples=[[1, 4]])
    datatype: Literal["BOOL", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32",
                      "UINT64", "FP32", "FP64", "BYTES"]
    data: list[Any] | None = Field(None, examples=[[5.1, 3.5, 1.4, 0.2]])
    parameters: dict[str, Any] | None = None


class V2RequestedOutput(BaseModel):
    name: Literal["predict", "predict_proba"]
    parameters: dict[str, Any] | None = None


class V2InferenceRequest(BaseModel):
    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[V2Tensor]
    outputs: list[V2RequestedOutput] | None = None


class V2InferenceResponse(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    outputs: list[V2Tensor]


def _operation(summary: str, request: type[BaseModel], response: type[BaseModel],
               versioned: bool) -> dict[str, Any]:
    params = [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}]
    if versioned:
        params.append({"name": "version", "in": "path", "required": True,
                       "description": "A version number, `latest`, or an alias.",
                       "schema": {"type": "string"}})
    ref = "#/components/schemas/{}"
    return {"post": {
        "summary": summary,
        "tags": ["predict"],
        "parameters": params,
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": ref.format(request.__name__)}}}},
        "responses": {
            "200": {"description": "Predictions", "content": {"application/json": {
                "schema": {"$ref": ref.format(response.__name__)}}}},
            "400": {"description": "Malformed request (and, on /v2, input that does not fit)"},
            "404": {"description": "No such model or version"},
            "413": {"description": "Body larger than max_request_bytes"},
            "422": {"description": "Input that does not fit the model's signature (/v1)"},
            "503": {"description": "The version cannot be served (corrupt, failed to load)"},
        },
    }}


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document plus the fast-path operations and their schemas."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    doc = get_openapi(title=app.title, version=app.version, description=app.description,
                      routes=app.routes)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for model in (V1PredictRequest, V1PredictResponse, V2InferenceRequest, V2InferenceResponse):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    paths = doc.setdefault("paths", {})
    for versioned in (False, True):
        middle = "/versions/{version}" if versioned else ""
        paths[f"/v1/models/{{name}}{middle}/predict"] = _operation(
            "Predict (simple JSON)", V1PredictRequest, V1PredictResponse, versioned)
        paths[f"/v2/models/{{name}}{middle}/infer"] = _operation(
            "Infer (Open Inference Protocol v2)", V2InferenceRequest, V2InferenceResponse,
            versioned)
    app.openapi_schema = doc
    return doc


def swagger_page(title: str) -> str:
    return SWAGGER_PAGE.format(title=title)


def redoc_page(title: str) -> str:
    return REDOC_PAGE.format(title=title)
