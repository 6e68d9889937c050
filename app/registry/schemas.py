"""Request and response bodies of the registry API, as Pydantic models.

Requests forbid unknown fields (a typo must be a 422, not silently ignored). Responses are
described here for the OpenAPI document; the views build them from store records.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from app.validation import Strict


class ModelCreate(Strict):
    name: str = Field(description="Model name: [A-Za-z0-9][A-Za-z0-9._-]{0,127}")
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)


class ModelPatch(Strict):
    description: str | None = None
    tags: dict[str, str] | None = Field(
        default=None, description="Merged into the existing tags; an empty value deletes a key."
    )


class VersionMetadata(Strict):
    """The optional `metadata` part of an upload."""

    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    signature: dict[str, Any] | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    trust: bool = Field(
        default=False,
        description="Required (with the token) to accept a pickle or joblib file, which runs code "
        "when loaded.",
    )


class VersionPatch(Strict):
    description: str | None = None
    tags: dict[str, str] | None = None


class AliasPut(Strict):
    version: int = Field(ge=1)


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class Health(BaseModel):
    status: str
    version: str


class Model(BaseModel):
    name: str
    description: str
    tags: dict[str, str]
    aliases: dict[str, int]
    latest_version: int | None
    version_count: int
    created_at: str
    updated_at: str


class Twin(BaseModel):
    status: str = Field(description="none, queued, verified, failed or unsupported")
    sha256: str | None = Field(description="The verified ONNX twin's file, if any")
    enabled: bool = Field(description="False when the version tag twin=off asks for sklearn")
    report: dict[str, Any] = Field(description="How the twin was checked, or why it failed")


class Version(BaseModel):
    model: str
    version: int
    status: str = Field(description="pending, ready, failed or corrupt; only ready is served")
    status_message: str
    format: str
    format_detail: str
    sha256: str | None
    size: int | None
    signature: dict[str, Any] | None
    metrics: dict[str, Any]
    params: dict[str, Any]
    tags: dict[str, str]
    aliases: list[str]
    description: str
    source: str
    imported_globals: list[str]
    environment: dict[str, str]
    warnings: list[str]
    dataset_id: str | None = Field(
        default=None, description="The dataset a training job fitted this version on."
    )
    twin: Twin = Field(description="The compiled ONNX twin that inference serves when verified")
    origin: dict[str, Any] | None = Field(
        default=None,
        description="Where an imported version came from: {kind: bundle|mirror|mlflow, "
        "publisher_key (or 'unsigned'), instance, model, version, upstream}; null if made here.",
    )
    evaluation: dict[str, Any] | None = Field(
        default=None,
        description="The evaluation report on held-out rows (docs/api.md, Evaluation reports): "
        "confusion matrix, ROC and PR curves, predicted vs actual, residuals, top features; "
        "null until a training job or an evaluate job computed one.",
    )
    created_at: str
    updated_at: str


class ModelPage(BaseModel):
    models: list[Model]
    next_page_token: str | None


class VersionPage(BaseModel):
    versions: list[Version]
    next_page_token: str | None


class Deleted(BaseModel):
    deleted: bool
    freed_bytes: int


class ImportResult(BaseModel):
    dry_run: bool
    publisher: dict[str, Any] = Field(
        description="instance, app_version, key (id of the trusted key that signed it, or null) "
        "and trusted_as (that key's local name)")
    added: list[dict[str, Any]] = Field(
        description="{model, version (local number), bundle_version, sha256, format, twin}")
    present: list[dict[str, Any]] = Field(
        description="Versions whose file the model already had: {model, version, bundle_version}")
    aliases: list[dict[str, Any]] = Field(description="Aliases moved: {model, alias, from, to}")
    warnings: list[str]


class PublicKeyOut(BaseModel):
    name: str
    id: str = Field(description="The key id a bundle's manifest names (publisher.key)")
    key: str = Field(description="The public key line: modeldepot-ed25519 <base64> <name>")


class KeyList(BaseModel):
    key: PublicKeyOut | None = Field(description="This box's key (signs its exports), if any")
    trusted: list[PublicKeyOut]


class TrustKey(Strict):
    key: str = Field(description="A public key line, as `modeldepot keys show` prints it")
    name: str | None = Field(default=None, description="The name to trust it as")


class UploadForm(BaseModel):
    """multipart/form-data: `file` (the model) and optional `metadata` (JSON, VersionMetadata)."""

    file: bytes
    metadata: VersionMetadata | None = None
