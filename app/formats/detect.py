"""Tell the format of a model file from its content, and check its name does not disagree."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from app.errors import InvalidModelFile
from app.formats.compression import compression_of
from app.formats.mlflow_zip import mlmodel_prefix
from app.formats.zip_safety import ZipLimits, check_members, open_zip

FORMATS = ("skops", "onnx", "pickle", "mlflow")

EXTENSIONS: dict[str, tuple[str, ...]] = {
    ".skops": ("skops",),
    ".onnx": ("onnx",),
    ".joblib": ("pickle",),
    ".pkl": ("pickle",),
    ".pickle": ("pickle",),
    ".zip": ("mlflow", "skops"),
}

# Opcodes a protocol 0 or 1 pickle can start with (protocol 2+ starts with PROTO, 0x80).
_OLD_PICKLE_STARTS = frozenset(b"(c]})NILFSVKJMGUTXi")
_ONNX_START = 0x08  # protobuf tag of ModelProto.ir_version, which onnx writes first


def detect(path: Path, limits: ZipLimits) -> str:
    """One of FORMATS, from the bytes. Zip members are all checked here, before any is read."""
    if os.path.getsize(path) == 0:
        raise InvalidModelFile("The file is empty.")
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        with open_zip(path) as zf:
            return classify_zip(zf, limits)
    if (head[0] == 0x80 and len(head) > 1 and 2 <= head[1] <= 5) or compression_of(head):
        return "pickle"
    if head[0] in _OLD_PICKLE_STARTS:
        return "pickle"
    if head[0] == _ONNX_START:
        return "onnx"
    raise InvalidModelFile(
        "The file is not a model format ModelDepot recognises: send skops, ONNX, a joblib or "
        "pickle file, or an MLflow model folder as a zip."
    )


def classify_zip(zf: zipfile.ZipFile, limits: ZipLimits) -> str:
    names = [info.filename for info in check_members(zf, limits)]
    if "schema.json" in names:
        return "skops"
    if mlmodel_prefix(names) is not None:
        return "mlflow"
    raise InvalidModelFile(
        "The zip archive is neither a skops file (no schema.json) nor an MLflow model "
        "(no MLmodel file at its root or in one top-level folder)."
    )


def check_extension(filename: str | None, fmt: str) -> None:
    """Refuse a known extension that names another format than the content has."""
    if not filename:
        return
    suffix = os.path.splitext(filename.replace("\\", "/").rsplit("/", 1)[-1])[1].lower()
    expected = EXTENSIONS.get(suffix)
    if expected is not None and fmt not in expected:
        raise InvalidModelFile(
            f"The file name ends in {suffix} but the content is a {fmt} model. Rename the file "
            "or check that you sent the right one."
        )
