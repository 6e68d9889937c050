"""inspect_file: detect, check, and describe an uploaded model file before it is stored."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.errors import TrustRequired
from app.formats.detect import check_extension, detect
from app.formats.environment import (
    LoadRecord,
    mismatch_warnings,
    runtime_environment,
    version_findings,
)
from app.formats.predictor import require_predict
from app.formats.signature import Signature, check_agrees, merge, signature_from_estimator
from app.formats.structure import check_structures
from app.formats.zip_safety import ZipLimits

_LISTED_GLOBALS = 30


@dataclass(frozen=True)
class ServedForm:
    """The file a version is served from when that is not the uploaded file: a pickle's skops
    copy, made in the sandbox. `temp` is a fsynced temp file the store adopts under `sha256`."""

    format: str
    temp: Path
    sha256: str
    size: int


@dataclass(frozen=True)
class Inspection:
    format: str
    format_detail: str
    signature: Signature | None
    imported_globals: tuple[str, ...]
    requires_trust: bool
    warnings: tuple[str, ...]
    environment: dict[str, str]
    served: ServedForm | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the sandbox's report (served is the parent's business)."""
        return {
            "format": self.format, "format_detail": self.format_detail,
            "signature": self.signature.to_dict() if self.signature else None,
            "imported_globals": list(self.imported_globals),
            "requires_trust": self.requires_trust, "warnings": list(self.warnings),
            "environment": dict(self.environment),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Inspection:
        signature = data.get("signature")
        return cls(
            format=str(data["format"]), format_detail=str(data["format_detail"]),
            signature=Signature.from_dict(signature) if signature else None,
            imported_globals=tuple(str(g) for g in data["imported_globals"]),
            requires_trust=bool(data["requires_trust"]),
            warnings=tuple(str(w) for w in data["warnings"]),
            environment={str(k): str(v) for k, v in data["environment"].items()},
        )


@dataclass(frozen=True)
class Examined:
    """An inspection and what it loaded: the estimator (None for ONNX, which is checked without
    being run), and whether the file is a pickle, served from a skops copy."""

    inspection: Inspection
    estimator: Any
    pickled: bool


def inspect_file(
    path: Path,
    *,
    trust: bool,
    filename: str | None = None,
    declared_signature: Signature | None = None,
    limits: ZipLimits = ZipLimits(),
) -> Inspection:
    """examine_file's inspection, for files this process may open (the sandbox child, and
    training's own output)."""
    return examine_file(path, trust=trust, filename=filename,
                        declared_signature=declared_signature, limits=limits).inspection


def examine_file(
    path: Path,
    *,
    trust: bool,
    filename: str | None = None,
    declared_signature: Signature | None = None,
    limits: ZipLimits = ZipLimits(),
) -> Examined:
    """Detect by content, run the safety checks, load, derive the signature.

    Raises InvalidModelFile (not a model, damaged, name disagrees with content, no predict),
    UnsafeModel (names outside the allow-list in pickles and skops files, external ONNX data,
    hostile zip),
    TrustRequired (a clean pickle sent without trust) and Unprocessable (a declared signature
    that contradicts the model). Messages never contain paths.
    """
    path = Path(path)
    fmt = detect(path, limits)
    check_extension(filename, fmt)
    if fmt == "onnx":
        return Examined(_inspect_onnx(path, declared_signature), None, False)
    if fmt == "skops":
        from app.formats.skops_format import load_skops

        estimator, record = load_skops(path)
        inspection = _describe(estimator, record, "skops", "skops", (), declared_signature)
        return Examined(inspection, estimator, False)
    if fmt == "pickle":
        from app.formats import pickle_format

        scanned = pickle_format.scan(path, limits)
        _require_trust(trust, scanned[0].imported_globals, "pickle")
        # Read whole, not memory-mapped: the sandbox converts it to skops, which must not see
        # numpy.memmap objects, and a map would hold a descriptor per array.
        estimator, record, scan, detail = pickle_format.load_pickle(path, limits, scanned)
        inspection = _describe(
            estimator, record, "pickle", detail, scan.imported_globals, declared_signature
        )
        return Examined(inspection, estimator, True)
    return _inspect_mlflow(path, trust, declared_signature, limits)


def _inspect_onnx(path: Path, declared: Signature | None) -> Inspection:
    from app.formats.onnx_format import inspect_onnx

    model_signature, env = inspect_onnx(path)
    check_agrees(declared, model_signature, "declared signature")
    signature = merge(declared, None, model_signature, model_knows_dtype=True)
    return Inspection("onnx", "onnx", signature, (), False, (), env)


def _inspect_mlflow(
    path: Path, trust: bool, declared: Signature | None, limits: ZipLimits
) -> Examined:
    from app.formats import pickle_format
    from app.formats.mlflow_zip import open_mlflow
    from app.formats.skops_format import load_skops

    mlflow = open_mlflow(path, limits)
    imported: tuple[str, ...] = ()
    if mlflow.serialization == "skops":
        estimator, record = load_skops(mlflow.model_bytes)
    else:
        scanned = pickle_format.scan(mlflow.model_bytes, limits)
        _require_trust(trust, scanned[0].imported_globals, "MLflow model's pickle")
        estimator, record, scan, _ = pickle_format.load_pickle(
            mlflow.model_bytes, limits, scanned
        )
        imported = scan.imported_globals
    inspection = _describe(
        estimator, record, "mlflow", "mlflow-sklearn", imported, declared, mlflow.signature
    )
    env = {**mlflow.environment, **inspection.environment}
    warnings = list(inspection.warnings)
    manifest_version = mlflow.environment.get("scikit-learn")
    if manifest_version and not record.sklearn_versions:
        installed = runtime_environment()["scikit-learn"]
        for sentence in mismatch_warnings([manifest_version], installed):
            if sentence not in warnings:
                warnings.append(sentence)
    pickled = mlflow.serialization != "skops"
    return Examined(Inspection(
        "mlflow", "mlflow-sklearn", inspection.signature, imported, pickled, tuple(warnings), env,
    ), estimator, pickled)


def _require_trust(trust: bool, imported: tuple[str, ...], what: str) -> None:
    if trust:
        return
    shown = ", ".join(imported[:_LISTED_GLOBALS])
    if len(imported) > _LISTED_GLOBALS:
        shown += f" and {len(imported) - _LISTED_GLOBALS} more"
    # Every name listed passed the allow-list (the scan refuses any other), and trust does not
    # widen it: trust only lets the file be opened at all.
    raise TrustRequired(
        f"This {what} runs code when it is loaded. It imports: {shown or 'nothing'}. If you "
        "trust it, send it again with metadata {\"trust\": true} and the API token, or convert it "
        "to skops first (modeldepot models push does this)."
    )


def _describe(
    estimator: Any,
    record: LoadRecord,
    fmt: str,
    detail: str,
    imported: tuple[str, ...],
    declared: Signature | None,
    manifest: Signature | None = None,
) -> Inspection:
    check_structures(estimator)
    require_predict(estimator)
    model_signature = signature_from_estimator(estimator)
    check_agrees(declared, model_signature, "declared signature")
    check_agrees(manifest, model_signature, "MLmodel signature")
    env, warnings = version_findings(record, estimator)
    return Inspection(
        format=fmt,
        format_detail=detail,
        signature=merge(declared, manifest, model_signature),
        imported_globals=imported,
        requires_trust=fmt in ("pickle", "mlflow"),
        warnings=tuple(warnings),
        environment=env,
    )
