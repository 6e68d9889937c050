"""Build a twin and prove it: convert, then compare it with the original on sample rows.

The bar, per row: the same label (same value and dtype, so the same JSON) and probabilities within
TOLERANCE of scikit-learn's. Regressors, whose float32 twins sum leaf values in another order,
must agree within TOLERANCE relative to the value (and at least absolute TOLERANCE near zero).
The check runs the same TwinPredictor class the inference server serves with, on the whole
sample at once and on single rows, so batch size cannot hide a difference.

The outcome is one of three, never an exception: `verified` with the graph, `failed` (a graph was
made but answers differently: the report says where), `unsupported` (no graph could be made).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from app.formats.signature import Signature
from app.formats.twin import TwinPredictor
from app.formats.twin_convert import Candidate, TwinUnsupported, candidates, label_rule

if TYPE_CHECKING:
    import numpy as np

TOLERANCE = 1e-5
SINGLE_ROW_CHECKS = 16
VERIFIED, FAILED, UNSUPPORTED = "verified", "failed", "unsupported"


@dataclass
class Outcome:
    status: str
    report: dict[str, Any]
    onnx_bytes: bytes | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)


class Mismatch(Exception):
    """The twin answered differently; the message says how, for the report."""


def build_and_verify(estimator: Any, signature: Signature, rows: np.ndarray,
                     sample: dict[str, Any]) -> Outcome:
    """Try each candidate graph until one matches the original on `rows`."""
    import numpy as np

    started = time.perf_counter()
    base = {"rows": int(len(rows)), **sample, "tolerance": TOLERANCE, **_tool_versions()}
    if signature.input_dtype == "str":
        return Outcome(UNSUPPORTED, {**base, "reason": "Models that take text are not compiled."})
    n_features = signature.n_features
    if not n_features:
        return Outcome(UNSUPPORTED, {**base, "reason": "The signature has no feature count."})
    X = np.ascontiguousarray(rows, dtype=np.float64)
    try:
        expected = _expected(estimator, X)
    except Exception as exc:
        return Outcome(UNSUPPORTED, {**base, "reason": "The original model cannot predict the "
                                     f"sample rows ({type(exc).__name__})."})
    attempts: list[dict[str, Any]] = []
    winner: tuple[Candidate, dict[str, Any]] | None = None
    for candidate in candidates(estimator, n_features):
        if isinstance(candidate, TwinUnsupported):
            attempts.append({"result": "unsupported", "reason": str(candidate)})
            continue
        attempt: dict[str, Any] = {"precision": candidate.precision}
        try:
            attempt.update(_compare(candidate, signature, X, expected, estimator))
            winner = (candidate, attempt)
            attempts.append({**attempt, "result": VERIFIED})
            break
        except TwinUnsupported as exc:
            attempts.append({**attempt, "result": "unsupported", "reason": str(exc)})
        except Mismatch as exc:
            attempts.append({**attempt, "result": "mismatch", "reason": str(exc)})
    report = {**base, "seconds": round(time.perf_counter() - started, 3), "attempts": attempts}
    if winner is not None:
        candidate, figures = winner
        report.update(figures, opset=candidate.opset, label_dtype=expected[0].dtype.str)
        return Outcome(VERIFIED, report, candidate.onnx_bytes, attempts)
    mismatched = [a for a in attempts if a["result"] == "mismatch"]
    status = FAILED if mismatched else UNSUPPORTED
    report["reason"] = (mismatched or attempts)[0].get("reason", "No twin could be made.")
    return Outcome(status, report, None, attempts)


def _expected(estimator: Any, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    import numpy as np

    labels = np.asarray(estimator.predict(X))
    proba = None
    if hasattr(estimator, "predict_proba"):
        proba = np.asarray(estimator.predict_proba(X), dtype=np.float64)
    return labels, proba


def _compare(candidate: Candidate, signature: Signature, X: np.ndarray,
             expected: tuple[np.ndarray, np.ndarray | None], estimator: Any) -> dict[str, Any]:
    """Figures of a matching twin; raises Mismatch naming the first difference."""
    from sklearn.base import is_classifier

    labels, proba = expected
    rule = label_rule(estimator)
    try:
        twin = TwinPredictor(candidate.onnx_bytes, signature, label_dtype=labels.dtype.str,
                             label_rule=rule)
        got = twin.predict(X)
        got_proba = twin.predict_proba(X) if twin.has_proba else None
        both = twin.predict_with_proba(X)
    except Exception as exc:
        raise TwinUnsupported(f"onnxruntime cannot run the graph ({type(exc).__name__}).") \
            from exc
    exact = is_classifier(estimator) or labels.dtype.kind not in "fc"
    figures: dict[str, Any] = {"label_rule": rule} if rule else {}
    if exact:
        figures["label_mismatches"] = _check_labels(labels, got)
    else:
        figures["max_relative_diff"] = _check_values(labels, got)
    if proba is not None:
        if got_proba is None:
            raise Mismatch("The twin gives no probabilities, but the original does.")
        figures["max_proba_diff"] = _check_proba(proba, got_proba)
        if both[1] is None or not _same(both[1], got_proba):
            raise Mismatch("One run for labels and probabilities disagrees with two runs.")
    if not _same(both[0], got):
        raise Mismatch("One run for labels and probabilities disagrees with two runs.")
    for i in range(min(SINGLE_ROW_CHECKS, len(X))):
        row = X[i:i + 1]
        if not _same(twin.predict(row), got[i:i + 1]):
            raise Mismatch(f"Row {i} predicted alone differs from the same row in a batch.")
    return figures


def _check_labels(expected: np.ndarray, got: np.ndarray) -> int:
    import numpy as np

    if got.shape != expected.shape:
        raise Mismatch(f"The twin's labels have shape {got.shape}, not {expected.shape}.")
    if got.dtype.kind in "OU" or expected.dtype.kind in "OU":
        if not (got.dtype.kind in "OU" and expected.dtype.kind in "OU"):
            raise Mismatch(f"The twin's labels are {got.dtype}, the original's {expected.dtype}.")
        same = np.array([a == b for a, b in zip(got.tolist(), expected.tolist(), strict=True)])
    elif got.dtype != expected.dtype:
        raise Mismatch(f"The twin's labels are {got.dtype}, the original's {expected.dtype}.")
    else:
        same = got == expected
    wrong = int((~same).sum()) if same.size else 0
    if wrong:
        first = int(np.argmin(same))
        raise Mismatch(f"{wrong} of {len(same)} labels differ (first at row {first}: "
                       f"{expected.tolist()[first]!r} expected, {got.tolist()[first]!r} from "
                       "the twin).")
    return 0


def _check_values(expected: np.ndarray, got: np.ndarray) -> float:
    import numpy as np

    got = np.asarray(got, dtype=np.float64)
    if got.shape != expected.shape:
        raise Mismatch(f"The twin's predictions have shape {got.shape}, not {expected.shape}.")
    scale = np.maximum(np.abs(expected), 1.0)
    with np.errstate(invalid="ignore"):
        relative = np.abs(got - expected) / scale
    relative = np.where(np.isnan(got) & np.isnan(expected), 0.0, relative)
    worst = float(np.nanmax(relative, initial=0.0)) if relative.size else 0.0
    if np.isnan(relative).any() or worst > TOLERANCE:
        raise Mismatch(f"Predictions differ by up to {worst:.3g} (relative), more than "
                       f"{TOLERANCE:g}.")
    return worst


def _check_proba(expected: np.ndarray, got: np.ndarray) -> float:
    import numpy as np

    if got.shape != expected.shape:
        raise Mismatch(f"The twin's probabilities have shape {got.shape}, not {expected.shape}.")
    diff = np.abs(got - expected)
    worst = float(diff.max(initial=0.0))
    if not np.isfinite(diff).all() or worst > TOLERANCE:
        raise Mismatch(f"Probabilities differ by up to {worst:.3g}, more than {TOLERANCE:g}.")
    return worst


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    import numpy as np

    return a.shape == b.shape and a.dtype == b.dtype and bool(np.array_equal(a, b))


def _tool_versions() -> dict[str, str]:
    from importlib.metadata import version

    return {"converter": f"skl2onnx {version('skl2onnx')}",
            "runtime": f"onnxruntime {version('onnxruntime')}"}
