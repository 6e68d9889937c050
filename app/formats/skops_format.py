"""skops files: load with an explicit list of trusted types, never `trusted=True`.

skops lists the types a file would instantiate without instantiating them. ModelDepot passes as
`trusted=` exactly those types, and only when every one resolves through the allow-list
(policy.resolve: the exact classes and functions a model needs, judged as objects, so a
re-export such as numpy.lib.npyio.pickle counts as the module it is). Names skops trusts by
itself are held to the same rule: every name the file's schema makes skops import must pass
too. Any refused name refuses the whole file, naming it.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

from app.errors import InvalidModelFile, UnsafeModel
from app.formats import policy
from app.formats.environment import LoadRecord, recording_versions
from app.formats.zip_safety import ZipLimits, check_members, open_zip, read_member

# Nodes skops builds without importing anything (json.loads of a literal).
_NON_IMPORTING_LOADERS = frozenset({"JsonNode"})


def _open(source: Path | bytes) -> zipfile.ZipFile:
    return open_zip(io.BytesIO(source) if isinstance(source, bytes) else source)


def _schema_names(zf: zipfile.ZipFile, limits: ZipLimits) -> set[str]:
    """Every "module.class" a node of the schema names, except nodes skops never imports for."""
    try:
        info = zf.getinfo("schema.json")
    except KeyError:
        raise InvalidModelFile("The skops file has no schema.json.") from None
    try:
        schema = json.loads(read_member(zf, info, limits))
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting deeper than json reads
        raise InvalidModelFile("The skops file's schema.json is damaged.") from exc
    names: set[str] = set()
    pending: list[Any] = [schema]
    while pending:  # iterative: the schema's nesting is the file's choice
        node = pending.pop()
        if isinstance(node, dict):
            module, cls = node.get("__module__"), node.get("__class__")
            if module is not None and node.get("__loader__") not in _NON_IMPORTING_LOADERS:
                if not isinstance(module, str) or not isinstance(cls, str):
                    raise InvalidModelFile("The skops file's schema.json names a type oddly.")
                names.add(f"{module}.{cls}")
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return names


def _refusals(names: set[str]) -> list[str]:
    refused = []
    for name in sorted(names):
        try:
            policy.resolve_qualified(name)
        except (UnsafeModel, InvalidModelFile):
            refused.append(name)
    return refused


def trusted_types(source: Path | bytes, limits: ZipLimits = ZipLimits()) -> list[str]:
    """The types to pass as `trusted=`; UnsafeModel if any is outside the allow-list."""
    import skops.io

    with _open(source) as zf:
        check_members(zf, limits)
        schema_names = _schema_names(zf, limits)
    try:
        if isinstance(source, bytes):
            untrusted = skops.io.get_untrusted_types(data=source)
        else:
            untrusted = skops.io.get_untrusted_types(file=source)
    except MemoryError:
        raise  # the machine's condition, not the file's fault
    except Exception as exc:  # skops raises many types on malformed schema.json
        raise InvalidModelFile("The skops file is damaged or not a skops file.") from exc
    refused = _refusals(set(untrusted) | schema_names)
    if refused:
        raise UnsafeModel(
            "The skops file needs types and functions ModelDepot never loads (it loads only the "
            f"classes and functions a scikit-learn model needs): {', '.join(refused)}. Save the "
            "model without them."
        )
    return sorted(untrusted)


def load_skops(source: Path | bytes) -> tuple[Any, LoadRecord]:
    """Load after the zip checks and the trusted-type check (whether the file came alone or
    inside an MLflow zip); returns the object and what sklearn said while loading."""
    import skops.io

    trusted = trusted_types(source)
    try:
        with recording_versions() as record:
            if isinstance(source, bytes):
                obj = skops.io.load(io.BytesIO(source), trusted=trusted)
            else:
                obj = skops.io.load(source, trusted=trusted)
    except (UnsafeModel, MemoryError):
        raise
    except Exception as exc:
        raise InvalidModelFile(
            "The skops file could not be loaded: it is damaged or was written by an "
            "incompatible skops version."
        ) from exc
    return obj, record
