"""Validation of every client-chosen name: model, alias, tag key, version reference.

Names are checked before they reach SQL or a log line, and never become file names (blobs are
named by their digest), so the rules exist for clarity and portability, not as a path defence.
"""

from __future__ import annotations

import re

from app.errors import BadRequest, InvalidName

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
MAX_TAG_VALUE = 5000
MAX_DESCRIPTION = 10_000
LATEST = "latest"


def check_name(value: object, what: str = "model name") -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise InvalidName(
            f"Invalid {what} {_shown(value)}: use 1 to 128 ASCII letters, digits, '.', '_' or '-', "
            "starting with a letter or digit."
        )
    return value


def check_alias(value: object) -> str:
    alias = check_name(value, "alias")
    if alias.isdigit() or alias == LATEST:
        raise InvalidName(f"Invalid alias {alias!r}: an alias cannot be all digits or 'latest'.")
    return alias


def check_tags(tags: object) -> dict[str, str]:
    if not isinstance(tags, dict):
        raise BadRequest("Tags must be an object of string keys to string values.")
    for key, value in tags.items():
        check_name(key, "tag key")
        if not isinstance(value, str) or len(value) > MAX_TAG_VALUE:
            raise BadRequest(
                f"Tag {key!r} must have a string value of at most {MAX_TAG_VALUE} chars."
            )
    return dict(tags)


def check_description(value: object) -> str:
    if not isinstance(value, str) or len(value) > MAX_DESCRIPTION:
        raise BadRequest(f"A description must be a string of at most {MAX_DESCRIPTION} characters.")
    return value


def parse_ref(ref: object) -> int | str:
    """A `{version}` path part: a version number, `latest`, or an alias name."""
    if isinstance(ref, str) and ref.isascii() and ref.isdigit() and len(ref) <= 18:
        number = int(ref)
        if number < 1:
            raise InvalidName("Version numbers start at 1.")
        return number
    if ref == LATEST:
        return LATEST
    if isinstance(ref, str) and _NAME.fullmatch(ref):
        return ref
    raise InvalidName(f"Invalid version {_shown(ref)}: use a number, 'latest' or an alias name.")


def _shown(value: object) -> str:
    """A short, printable echo of a bad value (no control characters in messages or logs)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
