"""Turn a fitted scikit-learn estimator into ONNX graphs with skl2onnx: the twin candidates.

Which precision matches scikit-learn depends on the model, so both are tried, in the order most
likely to verify:
- trees (forests, extra trees, gradient boosting) round their input to float32 before comparing
  it with float64 thresholds; skl2onnx moves each threshold to the float32 that splits float32
  inputs the same way, so a float32 graph fed float32-rounded rows takes the same branches. Its
  float64 graph keeps float32 thresholds but compares unrounded inputs, and strays;
- everything else (linear models, SVMs, neighbours, scalers) computes in float64, and so should
  its graph.
Classifiers are converted with `zipmap=False`, so probabilities come out as one plain tensor
rather than a list of dicts.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

PRECISIONS = ("float32", "float64")


class TwinUnsupported(Exception):
    """The converter (or onnxruntime) cannot handle this model at all."""


@dataclass(frozen=True)
class Candidate:
    precision: str
    onnx_bytes: bytes
    opset: dict[str, int]


def uses_trees(estimator: Any) -> bool:
    """Whether a decision tree inside the estimator (or its final pipeline step) decides."""
    from app.formats.twin_samples import trees_of

    return bool(trees_of(estimator))


def label_rule(estimator: Any) -> str | None:
    """How the twin should pick labels: from its probabilities for forests and trees, whose
    `predict` is the first class of highest probability (see twin.py), else the graph's own."""
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
    from sklearn.tree import DecisionTreeClassifier

    from app.formats.twin import PROBA_ARGMAX

    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    kinds = (RandomForestClassifier, ExtraTreesClassifier, DecisionTreeClassifier)
    if isinstance(final, kinds) and getattr(final, "n_outputs_", 1) == 1:
        return PROBA_ARGMAX
    return None


def precision_order(estimator: Any) -> tuple[str, ...]:
    return PRECISIONS if uses_trees(estimator) else PRECISIONS[::-1]


def convert(estimator: Any, n_features: int, precision: str) -> Candidate:
    """One ONNX graph of the estimator taking [rows, n_features] of `precision`."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType
    from sklearn.base import is_classifier

    tensor_type = FloatTensorType if precision == "float32" else DoubleTensorType
    options = {"zipmap": False} if is_classifier(estimator) else None
    try:
        with warnings.catch_warnings():
            # Converter deprecation chatter is not a conversion failure.
            warnings.simplefilter("ignore")
            model = to_onnx(estimator, initial_types=[("input", tensor_type([None, n_features]))],
                            options=options)
    except MemoryError:
        raise
    except Exception as exc:  # skl2onnx raises anything from RuntimeError to NameError
        raise TwinUnsupported(_reason(exc)) from exc
    opset = {entry.domain or "ai.onnx": int(entry.version) for entry in model.opset_import}
    return Candidate(precision, model.SerializeToString(), opset)


def candidates(estimator: Any, n_features: int) -> Iterator[Candidate | TwinUnsupported]:
    """Each precision's graph (or why it could not be made), the likeliest match first."""
    for precision in precision_order(estimator):
        try:
            yield convert(estimator, n_features, precision)
        except TwinUnsupported as exc:
            yield exc


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if len(text) > 300:
        text = text[:297] + "..."
    return f"skl2onnx cannot convert it ({type(exc).__name__}{': ' + text if text else ''})."
