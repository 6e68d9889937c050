"""Page tokens and page sizes for every listing the store offers (models, versions, jobs)."""

from __future__ import annotations

import base64
import json
from typing import Any

from app.errors import BadRequest

DEFAULT_PAGE = 100
MAX_PAGE = 1000


def encode_token(key: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def decode_token(token: str | None) -> Any:
    if not token:
        return None
    try:
        return json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("The page_token is not one this server issued.") from exc


def check_limit(limit: int | None) -> int:
    if limit is None:
        return DEFAULT_PAGE
    if not 1 <= limit <= MAX_PAGE:
        raise BadRequest(f"limit must be between 1 and {MAX_PAGE}.")
    return limit
