"""Plain records the store hands out; `to_dict` gives the API's JSON shape."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )


TWIN_TAG = "twin"


@dataclass(frozen=True)
class VersionRecord:
    id: int
    model: str
    version: int
    status: str
    status_message: str
    format: str
    format_detail: str
    sha256: str | None
    size: int | None
    signature: dict[str, Any] | None
    metrics: dict[str, Any]
    params: dict[str, Any]
    description: str
    source: str
    imported_globals: list[str]
    environment: dict[str, str]
    warnings: list[str]
    created_at: float
    updated_at: float
    tags: dict[str, str] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)
    dataset_id: str | None = None
    twin_status: str = "none"
    twin_sha256: str | None = None
    twin_report: dict[str, Any] = field(default_factory=dict)
    served_format: str | None = None
    served_sha256: str | None = None
    served_size: int | None = None
    origin: dict[str, Any] | None = None  # where an imported version came from (app/fleet)
    evaluation: dict[str, Any] = field(default_factory=dict)
    load_cache_sha256: str | None = None  # the server's own fast-loading copy (load_cache.py)
    load_cache_recipe: dict[str, Any] | None = None

    @property
    def served_file(self) -> tuple[str | None, str]:
        """(digest, format) of the file servers load: a pickle's skops copy, else the file."""
        if self.served_sha256 and self.served_format:
            return self.served_sha256, self.served_format
        return self.sha256, self.format

    @property
    def twin_enabled(self) -> bool:
        """The per-version switch: the version tag `twin=off` serves it by scikit-learn."""
        return self.tags.get(TWIN_TAG, "on").lower() != "off"

    @classmethod
    def from_row(
        cls, row: sqlite3.Row, tags: dict[str, str], aliases: list[str]
    ) -> VersionRecord:
        return cls(
            id=row["id"],
            model=row["model_name"],
            version=row["version"],
            status=row["status"],
            status_message=row["status_message"],
            format=row["format"],
            format_detail=row["format_detail"],
            sha256=row["sha256"],
            size=row["size"],
            signature=json.loads(row["signature"]) if row["signature"] else None,
            metrics=json.loads(row["metrics"]),
            params=json.loads(row["params"]),
            description=row["description"],
            source=row["source"],
            imported_globals=json.loads(row["imported_globals"]),
            environment=json.loads(row["environment"]),
            warnings=json.loads(row["warnings"]),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            tags=tags,
            aliases=aliases,
            dataset_id=row["dataset_id"],
            twin_status=row["twin_status"],
            twin_sha256=row["twin_sha256"],
            twin_report=json.loads(row["twin_report"] or "{}"),
            served_format=row["served_format"],
            served_sha256=row["served_sha256"],
            served_size=row["served_size"],
            origin=json.loads(row["origin"]) if row["origin"] else None,
            evaluation=json.loads(row["evaluation"] or "{}"),
            load_cache_sha256=row["load_cache_sha256"],
            load_cache_recipe=json.loads(row["load_cache_recipe"])
            if row["load_cache_recipe"] else None,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "status": self.status,
            "status_message": self.status_message,
            "format": self.format,
            "format_detail": self.format_detail,
            "sha256": self.sha256,
            "size": self.size,
            "signature": self.signature,
            "metrics": self.metrics,
            "params": self.params,
            "tags": self.tags,
            "aliases": self.aliases,
            "description": self.description,
            "source": self.source,
            "imported_globals": self.imported_globals,
            "environment": self.environment,
            "warnings": self.warnings,
            "dataset_id": self.dataset_id,
            "twin": {"status": self.twin_status, "sha256": self.twin_sha256,
                     "enabled": self.twin_enabled, "report": self.twin_report},
            "served": {"format": self.served_format, "sha256": self.served_sha256,
                       "size": self.served_size} if self.served_sha256 else None,
            "origin": self.origin,
            "evaluation": self.evaluation or None,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }


@dataclass(frozen=True)
class ModelRecord:
    id: int
    name: str
    description: str
    created_at: float
    updated_at: float
    tags: dict[str, str]
    aliases: dict[str, int]
    latest_version: int | None
    version_count: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "tags": self.tags,
            "aliases": self.aliases,
            "latest_version": self.latest_version,
            "version_count": self.version_count,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }
