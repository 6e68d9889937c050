"""Serve a scikit-learn model through its ONNX twin: the graph skl2onnx made of it, on onnxruntime.

A twin answers exactly as its scikit-learn original would, in the same JSON: the registry built
it and checked it row by row (twin_verify.py), and this class is the very one that check ran, so
what was verified is what is served. Two facts shape it:
- a float32 twin of a tree model must see its input rounded to float32, as scikit-learn's trees
  round it themselves, so the class casts to the graph's input type rather than the signature's;
- onnxruntime returns int64 or string labels whatever the classes were, so labels are cast back
  to the dtype scikit-learn's `predict` gave (`label_dtype` in the verification report): class
  0.0 stays 0.0 in the response, never 0;
- a forest's label is the first class of highest mean vote, and votes tie often (25 trees against
  25). A float32 graph sums the votes with rounding errors of about 1e-7, which break those ties
  at random, so for forests the label is taken from the probabilities instead, counting classes
  within TIE of the best as tied and taking the first, as scikit-learn does (`label_rule`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.errors import BadRequest, InvalidModelFile
from app.formats.signature import Signature

if TYPE_CHECKING:
    import numpy as np

LABEL = "label"
PROBABILITIES = "probabilities"
PROBA_ARGMAX = "proba_argmax"
TIE = 1e-6
_INPUT_TYPES = {1: "float32", 11: "float64"}


class TwinPredictor:
    """The Predictor interface over an onnxruntime session of a verified twin."""

    # A batch of up to this many rows takes tens of microseconds even for a 100-tree forest,
    # less than a thread handoff: the inference batcher runs it on the event loop.
    inline_rows = 16

    def __init__(self, onnx_bytes: bytes, signature: Signature, *, label_dtype: str | None,
                 label_rule: str | None = None) -> None:
        import numpy as np

        from app.formats.onnx_format import cpu_session

        self._np = np  # held here so that predict, a hot path, imports nothing
        self._session = cpu_session(onnx_bytes, "this twin")
        graph_input = self._session.get_inputs()[0]
        dtype = _INPUT_TYPES.get(_elem_type(graph_input.type))
        if dtype is None:
            raise InvalidModelFile("The twin's input is neither float32 nor float64.")
        self._input = graph_input.name
        self.input_dtype = np.dtype(dtype)
        names = [o.name for o in self._session.get_outputs()]
        self._label = LABEL if LABEL in names else names[0]
        self._proba = PROBABILITIES if PROBABILITIES in names else None
        self.signature = signature
        # What the original offers, not what the graph happens to output: skl2onnx gives an
        # SVC without probability=True a "probabilities" output holding decision scores.
        self.has_proba = "predict_proba" in signature.outputs and self._proba is not None
        self._label_dtype = None if label_dtype is None else np.dtype(label_dtype)
        if self._label_dtype is not None and self._label_dtype.kind in "OU":
            self._label_dtype = None  # strings: onnxruntime's object array is the same JSON
        self._both = [self._label, self._proba] if self._proba else [self._label]
        self._classes = None
        if label_rule == PROBA_ARGMAX:
            if not (self.has_proba and signature.classes):
                raise InvalidModelFile("A twin labelled from probabilities needs its classes.")
            self._classes = np.asarray(signature.classes, dtype=self._label_dtype)

    def _feed(self, X: np.ndarray) -> dict[str, np.ndarray]:
        return {self._input: X.astype(self.input_dtype, copy=False)}

    def _labels(self, raw: Any) -> np.ndarray:
        out = self._np.asarray(raw)
        if out.ndim == 2 and out.shape[1] == 1:
            out = out.reshape(-1)
        if self._label_dtype is not None and out.dtype != self._label_dtype:
            out = out.astype(self._label_dtype)
        return out

    def _from_proba(self, proba: np.ndarray) -> np.ndarray:
        assert self._classes is not None
        best = proba.max(axis=1, keepdims=True)
        labels: np.ndarray = self._classes[(proba >= best - TIE).argmax(axis=1)]  # first True
        return labels

    def predict(self, X: np.ndarray) -> np.ndarray:
        if self._classes is not None:
            return self._from_proba(self.predict_proba(X))
        return self._labels(self._session.run([self._label], self._feed(X))[0])

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        if not self.has_proba:
            raise BadRequest("This model does not give probabilities (it has no predict_proba).")
        out = self._session.run([self._proba], self._feed(X))[0]
        return self._np.asarray(out, dtype=self._np.float64)

    def predict_with_proba(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Labels and probabilities from one graph run (the batcher asks for both at once)."""
        if not self.has_proba:
            return self.predict(X), None
        if self._classes is not None:
            proba = self.predict_proba(X)
            return self._from_proba(proba), proba
        labels, proba = self._session.run(self._both, self._feed(X))
        return self._labels(labels), self._np.asarray(proba, dtype=self._np.float64)


def _elem_type(type_name: str) -> int:
    """onnxruntime names input types as strings ("tensor(float)"); map back to ONNX codes."""
    return {"tensor(float)": 1, "tensor(double)": 11}.get(type_name, 0)


def load_twin(onnx_bytes: bytes, signature: Signature, report: dict[str, Any]) -> TwinPredictor:
    """A twin ready to serve, from its bytes and the verification report stored beside it."""
    label_dtype = report.get("label_dtype")
    label_rule = report.get("label_rule")
    return TwinPredictor(onnx_bytes, signature,
                         label_dtype=label_dtype if isinstance(label_dtype, str) else None,
                         label_rule=label_rule if isinstance(label_rule, str) else None)


__all__ = ["TwinPredictor", "load_twin"]
