"""MLflow model folders sent as a zip: find MLmodel, read the sklearn flavor, get the model.

Nothing is extracted: members are read in memory after `zip_safety.check_members` accepted
every one of them.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.errors import InvalidModelFile, Unprocessable
from app.formats.signature import Signature
from app.formats.zip_safety import ZipLimits, check_members, open_zip, read_member

MLMODEL = "MLmodel"
_MLMODEL_MAX_BYTES = 1 << 20
SERIALIZATIONS = ("cloudpickle", "pickle", "skops")


@dataclass
class MlflowModel:
    model_bytes: bytes
    serialization: str  # one of SERIALIZATIONS
    signature: Signature | None
    environment: dict[str, str] = field(default_factory=dict)


def mlmodel_prefix(names: list[str]) -> str | None:
    """"" if MLmodel is at the root, "dir/" if it is in exactly one top-level folder, else None."""
    if MLMODEL in names:
        return ""
    prefixes = sorted({n[: -len(MLMODEL)] for n in names if n.endswith("/" + MLMODEL)})
    top_level = [p for p in prefixes if p.count("/") == 1]
    if len(top_level) > 1:
        raise InvalidModelFile(
            "The zip archive holds more than one MLflow model (several MLmodel files); send one."
        )
    return top_level[0] if top_level else None


def _manifest(zf: zipfile.ZipFile, prefix: str, limits: ZipLimits) -> dict[str, Any]:
    import yaml

    info = zf.getinfo(prefix + MLMODEL)
    if info.file_size > _MLMODEL_MAX_BYTES:
        raise InvalidModelFile(
            "The MLmodel file is larger than 1 MiB; it is not an MLflow manifest."
        )
    try:
        manifest = yaml.safe_load(read_member(zf, info, limits))
    except yaml.YAMLError as exc:
        raise InvalidModelFile("The MLmodel file is not valid YAML.") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("flavors"), dict):
        raise InvalidModelFile("The MLmodel file has no 'flavors' section.")
    return manifest


def _model_path(flavors: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    sklearn = flavors.get("sklearn")
    pyfunc = flavors.get("python_function")
    sklearn = sklearn if isinstance(sklearn, dict) else None
    pyfunc = pyfunc if isinstance(pyfunc, dict) else None
    if sklearn is None and (pyfunc is None or pyfunc.get("loader_module") != "mlflow.sklearn"):
        raise InvalidModelFile(
            "The MLflow model has no scikit-learn flavor; ModelDepot serves scikit-learn models."
        )
    candidates = [
        (sklearn or {}).get("pickled_model"),
        (pyfunc or {}).get("model_path"),
        (pyfunc or {}).get("data"),  # MLflow 1.x
    ]
    path = next((c for c in candidates if c), None)
    if not isinstance(path, str):
        raise InvalidModelFile("The MLmodel file does not name the model file (pickled_model).")
    if path.startswith("/") or "\\" in path or ".." in path.split("/"):
        raise InvalidModelFile("The MLmodel file names a model file outside the model folder.")
    return path.removeprefix("./"), sklearn or {}


def _signature(manifest: dict[str, Any]) -> Signature | None:
    section = manifest.get("signature")
    if not isinstance(section, dict) or not section.get("inputs"):
        return None
    try:
        return Signature.from_dict({"inputs": section["inputs"]})
    except Unprocessable as exc:
        raise InvalidModelFile(f"The MLmodel signature is malformed: {exc.message}") from exc


def open_mlflow(path: Path, limits: ZipLimits) -> MlflowModel:
    """The model inside an MLflow zip, after every member is checked: what inspection and
    loading both start from."""
    with open_zip(path) as zf:
        prefix = mlmodel_prefix([i.filename for i in check_members(zf, limits)])
        if prefix is None:
            raise InvalidModelFile("The zip archive has no MLmodel file.")
        return read_mlflow(zf, prefix, limits)


def read_mlflow(zf: zipfile.ZipFile, prefix: str, limits: ZipLimits) -> MlflowModel:
    manifest = _manifest(zf, prefix, limits)
    path, sklearn = _model_path(manifest["flavors"])
    serialization = str(sklearn.get("serialization_format") or "cloudpickle")
    if serialization not in SERIALIZATIONS:
        raise InvalidModelFile(
            f"The MLflow model uses serialization_format {serialization!r}; ModelDepot reads "
            f"{', '.join(SERIALIZATIONS)}."
        )
    try:
        info = zf.getinfo(prefix + path)
    except KeyError:
        raise InvalidModelFile(
            f"The MLmodel file names {path!r} as the model, but the zip archive has no such file."
        ) from None
    data = read_member(zf, info, limits)
    is_zip = data.startswith(b"PK\x03\x04")
    if serialization == "skops" and not is_zip:
        raise InvalidModelFile("The MLmodel says skops, but the model file is not a skops file.")
    env: dict[str, str] = {}
    pyfunc = manifest["flavors"].get("python_function")
    if isinstance(pyfunc, dict) and pyfunc.get("python_version"):
        env["python"] = str(pyfunc["python_version"])
    if sklearn.get("sklearn_version"):
        env["scikit-learn"] = str(sklearn["sklearn_version"])
    return MlflowModel(data, "skops" if is_zip else serialization, _signature(manifest), env)
