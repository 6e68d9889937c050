"""Pydantic request validation shared by the registry's routes and the job kinds: strict models,
and one sentence per problem naming the field. No Flask here, so app/training can use it."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from app.errors import Unprocessable

M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def validation_message(exc: ValidationError) -> str:
    """One sentence per problem, naming the field: what a client needs to fix its request."""
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"]) or "body"
        if err["type"] == "extra_forbidden":
            parts.append(f"Unknown field '{where}'.")
        elif err["type"] == "missing":
            parts.append(f"Field '{where}' is required.")
        else:
            parts.append(f"Field '{where}': {err['msg']}.")
    return " ".join(parts)


def validate(model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise Unprocessable(validation_message(exc), code="invalid_fields") from exc
