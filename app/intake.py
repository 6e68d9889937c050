"""What every way of adding a version shares (an upload, a bundle import, a mirror): the rule that
trusting a pickle needs the token, and how a content inspection becomes the store's NewVersion.
No HTTP here: the registry's services and app/fleet's importer both call it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.errors import Unauthorized
from app.store import NewVersion

if TYPE_CHECKING:
    from app.formats import Inspection


def require_token_for_trust(trust: bool, token_presented: bool) -> None:
    """Checked before inspection: with trust, inspection loads the file, which runs code."""
    if trust and not token_presented:
        raise Unauthorized(
            "Trusting a pickle means running its code on this machine, so trust=true needs "
            "the API token even when other writes don't."
        )


def new_version(
    inspection: Inspection,
    *,
    metrics: dict[str, Any],
    params: dict[str, Any],
    description: str,
    tags: dict[str, str],
    source: str,
    warnings: tuple[str, ...] = (),
) -> NewVersion:
    """The version as the store records it: format, signature, imported globals and environment
    always from what inspection found in the file, never from what a client said."""
    return NewVersion(
        format=inspection.format,
        format_detail=inspection.format_detail,
        signature=inspection.signature.to_dict() if inspection.signature else None,
        metrics=metrics,
        params=params,
        description=description,
        source=source,
        imported_globals=inspection.imported_globals,
        environment=inspection.environment,
        warnings=(*inspection.warnings, *warnings),
        tags=tags,
        served=inspection.served,
    )
