"""Load a stored model file into something that predicts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from app.errors import BadRequest, InvalidModelFile
from app.formats.signature import Signature, signature_from_estimator
from app.formats.structure import check_structures

if TYPE_CHECKING:
    import numpy as np


class Predictor(Protocol):
    """What serving needs of a loaded model: scikit-learn's, an ONNX file's or a twin's."""

    @property
    def signature(self) -> Signature | None: ...
    @property
    def has_proba(self) -> bool: ...

    def predict(self, X: np.ndarray) -> np.ndarray: ...

    def predict_proba(self, X: np.ndarray) -> np.ndarray: ...


def require_predict(estimator: Any) -> None:
    if not callable(getattr(estimator, "predict", None)):
        raise InvalidModelFile(
            f"The file holds a {type(estimator).__name__} object, which has no predict method; "
            "ModelDepot serves fitted estimators."
        )


class SklearnPredictor:
    def __init__(self, estimator: Any, signature: Signature | None) -> None:
        import numpy as np

        self._np = np  # held here so that predict, a hot path, imports nothing
        require_predict(estimator)
        self.estimator = estimator
        self.signature = signature
        self.has_proba = hasattr(estimator, "predict_proba")

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self._np.asarray(self.estimator.predict(X))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        if not self.has_proba:
            raise BadRequest("This model does not give probabilities (it has no predict_proba).")
        return self._np.asarray(self.estimator.predict_proba(X), dtype=self._np.float64)


class OnnxPredictor:
    def __init__(self, model_bytes: bytes, signature: Signature) -> None:
        import numpy as np

        from app.formats.onnx_format import cpu_session, label_output, proba_output

        self._np = np
        self._session = cpu_session(model_bytes, "this ONNX model")
        self.signature: Signature | None = signature
        self._classes = signature.classes
        self._input = self._session.get_inputs()[0].name
        self._dtype = np.dtype(object) if signature.input_dtype == "str" else np.dtype(
            signature.input_dtype
        )
        names = [o.name for o in self._session.get_outputs()]
        self._label = label_output(names)
        self._proba = proba_output(names)
        self.has_proba = self._proba is not None

    def _run(self, output: str, X: np.ndarray) -> Any:
        feed = {self._input: self._np.asarray(X, dtype=self._dtype)}
        return self._session.run([output], feed)[0]

    def predict(self, X: np.ndarray) -> np.ndarray:
        out = self._np.asarray(self._run(self._label, X))
        return out.reshape(-1) if out.ndim == 2 and out.shape[1] == 1 else out

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        if self._proba is None:
            raise BadRequest("This model does not give probabilities (no probabilities output).")
        numpy = self._np
        out = self._run(self._proba, X)
        if isinstance(out, list):
            # ZipMap output: one {class: probability} dict per row.
            classes = list(self._classes or (sorted(out[0]) if out else []))
            table: np.ndarray = numpy.array([[row[c] for c in classes] for row in out],
                                            dtype=numpy.float64).reshape(len(out), len(classes))
            return table
        proba: np.ndarray = numpy.asarray(out, dtype=numpy.float64)
        return proba


def load_predictor(path: Path, format: str, *, signature: Signature | None = None) -> Predictor:
    """Load a stored file a server may open: ONNX, skops, or an MLflow zip holding skops.

    A pickle never: it is opened once, in the sandbox (app/formats/sandbox.py), and its version
    is served from the skops copy made there (VersionRecord.served_file).
    """
    from app.formats import onnx_format, skops_format
    from app.formats.mlflow_zip import open_mlflow
    from app.formats.zip_safety import ZipLimits

    if format == "onnx":
        data = path.read_bytes()
        model = onnx_format.parse(data)
        onnx_format.check_self_contained(model)
        return OnnxPredictor(data, signature or onnx_format.onnx_signature(model))
    if format == "skops":
        estimator, _ = skops_format.load_skops(path)
    elif format == "mlflow" and (mlflow := open_mlflow(path, ZipLimits())).serialization == "skops":
        estimator, _ = skops_format.load_skops(mlflow.model_bytes)
    elif format in ("pickle", "mlflow"):
        raise InvalidModelFile(
            "This version is a pickle without the skops copy servers load (an earlier release "
            "stored it; the registry makes the copy at start), and ModelDepot servers never open "
            "pickles. If this persists, the registry log says why; upload the model again."
        )
    else:
        raise InvalidModelFile(f"Unknown model format {format!r}.")
    check_structures(estimator)
    from app.formats.linear import linear_predictor  # it builds on SklearnPredictor, above

    return linear_predictor(estimator, signature or signature_from_estimator(estimator))


__all__ = ["OnnxPredictor", "Predictor", "SklearnPredictor", "load_predictor"]
