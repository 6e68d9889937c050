"""skops files: load with an explicit list of trusted types, never `trusted=True`.

skops lists the types a file would instantiate without instantiating them. ModelDepot trusts
exactly those types when every one is inside scikit-learn, numpy or scipy, off the deny-list
under the name written and under the object's own name, and not a class with a __del__; any
other type refuses the file, naming it.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from app.errors import InvalidModelFile, UnsafeModel
from app.formats import policy
from app.formats.environment import LoadRecord, recording_versions


def trusted_types(source: Path | bytes) -> list[str]:
    """The types to pass as `trusted=`; UnsafeModel if any is outside the allow-list."""
    import skops.io

    try:
        if isinstance(source, bytes):
            untrusted = skops.io.get_untrusted_types(data=source)
        else:
            untrusted = skops.io.get_untrusted_types(file=source)
    except Exception as exc:  # skops raises many types on malformed schema.json
        raise InvalidModelFile("The skops file is damaged or not a skops file.") from exc
    refused = sorted(t for t in untrusted if not policy.is_allowed(t))
    if refused:
        raise UnsafeModel(
            "The skops file needs types outside scikit-learn, numpy and scipy, which ModelDepot "
            f"does not trust: {', '.join(refused)}. Save the model without them, or send it as a "
            "trusted pickle."
        )
    denied = sorted(f"{t} ({why})" for t in untrusted if (why := policy.object_denial(t)))
    if denied:
        raise UnsafeModel(
            f"The skops file needs types ModelDepot never loads: {', '.join(denied)}."
        )
    return list(untrusted)


def load_skops(source: Path | bytes) -> tuple[Any, LoadRecord]:
    """Load after the zip checks and the trusted-type check (whether the file came alone or
    inside an MLflow zip); returns the object and what sklearn said while loading."""
    import skops.io

    from app.formats.zip_safety import ZipLimits, check_members, open_zip

    with open_zip(io.BytesIO(source) if isinstance(source, bytes) else source) as zf:
        check_members(zf, ZipLimits())
    trusted = trusted_types(source)
    try:
        with recording_versions() as record:
            if isinstance(source, bytes):
                obj = skops.io.load(io.BytesIO(source), trusted=trusted)
            else:
                obj = skops.io.load(source, trusted=trusted)
    except UnsafeModel:
        raise
    except Exception as exc:
        raise InvalidModelFile(
            "The skops file could not be loaded: it is damaged or was written by an "
            "incompatible skops version."
        ) from exc
    return obj, record
