"""The sandbox child: open one client model file, confined, and report what was found.

Started by app/formats/sandbox.py as `modeldepot sandbox-child` (`python -m app sandbox-child`
from source), or forked by the zygote (app/formats/zygote.py) that has imported the libraries
already, with a one-line JSON request on stdin. It imports the model libraries, confines
itself (app/formats/confine.py), then inspects the file exactly as an upload is inspected,
validates its structures, makes a first prediction (the canary: a file that crashes native code
crashes this throwaway process, not a server), and for a pickle writes the skops copy the version
will be served from. Its answer on stdout: one JSON line, then the skops bytes it announced.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, BinaryIO

from app.errors import InvalidModelFile, ModelDepotError
from app.formats.confine import Limits, confine

log = logging.getLogger("modeldepot.sandbox")
_PROBE_ROWS = 8
# What the zygote imports before it forks: none of these starts a thread at import.
FORK_SAFE = ("numpy", "scipy", "sklearn", "sklearn.utils", "skops.io", "joblib", "onnx", "yaml")
# onnxruntime starts a native thread when imported, and a process that forks must have none
# (the child would inherit its locks, not the thread), so each child imports it itself (some
# tens of milliseconds; benchmarks/bench_sandbox.py).
THREADED = ("onnxruntime",)


def preload(names: tuple[str, ...] = FORK_SAFE + THREADED) -> None:
    """Import what inspection needs before confinement: importing reads files, which stays
    allowed, but a onefile binary may still have to unpack these (app/lazy_unpack.py), which
    writes."""
    import importlib

    for name in names:
        importlib.import_module(name)
    import sklearn.utils  # noqa: F401  (all_estimators imports every estimator module)

    from app.formats import inspection, predictor, skops_format  # noqa: F401


def single_threaded_environment() -> None:
    """No BLAS or OpenMP thread pools: the child's work is small, and the zygote must stay a
    single thread to fork safely."""
    os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"
    # pyarrow (which scikit-learn reaches through pandas where both are installed, e.g. beside
    # mlflow) starts jemalloc's background thread on import unless told not to.
    os.environ.setdefault("JE_ARROW_MALLOC_CONF", "background_thread:false")
    sys.dont_write_bytecode = True


def probe_rows(n_features: int, dtype: str | None) -> Any:
    """Rows for a first prediction: zeros, then values at a few scales (reproducible)."""
    import numpy as np

    if dtype == "str":
        return np.full((2, n_features), "", dtype=object)
    rng = np.random.default_rng(0)
    scales = np.repeat([1.0, 10.0, 1000.0, 1e-3], 2)[:, None]
    return np.vstack([np.zeros((1, n_features)), rng.normal(size=(_PROBE_ROWS, n_features)) *
                      np.resize(scales, (_PROBE_ROWS, 1))])


def _first_predictions(predictor: Any, rows: Any) -> tuple[Any, Any]:
    predictions = predictor.predict(rows)
    proba = predictor.predict_proba(rows) if getattr(predictor, "has_proba", False) else None
    return predictions, proba


def canary(examined: Any, path: Path) -> list[str]:
    """A first prediction in this throwaway process; returns warnings (an exception is a
    finding about the model, reported, while a crash ends this process, which the parent
    reports as the crash it is)."""
    from app.formats.predictor import OnnxPredictor, SklearnPredictor

    inspection = examined.inspection
    signature = inspection.signature
    if signature is None or not signature.n_features:
        return []
    if examined.estimator is None:
        predictor: Any = OnnxPredictor(path.read_bytes(), signature)
    else:
        predictor = SklearnPredictor(examined.estimator, signature)
    try:
        _first_predictions(predictor, probe_rows(signature.n_features, signature.input_dtype))
    except Exception as exc:
        return [f"A first prediction on made-up rows failed ({type(exc).__name__}); the model "
                "may not be servable as stored."]
    return []


def convert(examined: Any) -> bytes:
    """The skops copy of a pickled estimator, checked by the upload's own skops rules and
    predicting exactly like the original on probe rows."""
    import numpy as np
    import skops.io

    from app.formats.convert import same_predictions
    from app.formats.skops_format import load_skops

    estimator = examined.estimator
    why = "skops cannot represent it"
    try:
        data: bytes = skops.io.dumps(estimator)
    except Exception as exc:
        raise InvalidModelFile(
            "The pickle loaded, but it cannot be converted to skops, the form ModelDepot serves "
            f"pickles from ({why}: {type(exc).__name__}). Nothing was stored."
        ) from None
    copy, _ = load_skops(data)
    signature = examined.inspection.signature
    if signature is not None and signature.n_features:
        rows = probe_rows(signature.n_features, signature.input_dtype)
        try:
            expected = np.asarray(estimator.predict(rows))
            got = np.asarray(copy.predict(rows))
        except Exception:
            return data  # the canary has reported this model's prediction failure already
        if expected.shape != got.shape or not same_predictions(expected, got):
            raise InvalidModelFile(
                "The pickle's skops copy predicts differently from the pickle, so ModelDepot "
                "cannot serve it safely. Nothing was stored."
            )
    return data


def examine(request: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    from app.formats.inspection import examine_file
    from app.formats.signature import Signature

    declared = request.get("declared_signature")
    path = Path(request["path"])
    examined = examine_file(
        path, trust=bool(request["trust"]), filename=request.get("filename"),
        declared_signature=Signature.from_dict(declared) if declared else None,
    )
    warnings = canary(examined, path)
    served = convert(examined) if examined.pickled else b""
    report = examined.inspection.to_dict()
    report["warnings"] = report["warnings"] + warnings
    return report, served


def _answer(out: BinaryIO, header: dict[str, Any], payload: bytes = b"") -> None:
    out.write(json.dumps(header).encode() + b"\n")
    out.write(payload)
    out.flush()


def main() -> int:
    """`sandbox-child`: a new process that imports everything itself."""
    request = read_request()
    single_threaded_environment()
    preload()
    return answer(request)


def read_request() -> dict[str, Any]:
    request = json.loads(sys.stdin.buffer.readline())
    if not isinstance(request, dict):
        raise ValueError("the sandbox request is not a JSON object")
    return request


def answer(request: dict[str, Any]) -> int:
    """Confine this process, inspect the requested file, write the answer to stdout."""
    out = sys.stdout.buffer
    try:
        confined = confine(Limits(memory_bytes=int(request["memory_bytes"]),
                                  cpu_seconds=int(request["cpu_seconds"])))
    except OSError as exc:  # never open the file unconfined
        _answer(out, {"ok": False, "kind": "Confinement", "message": str(exc)})
        return 0
    try:
        report, served = examine(request)
    except ModelDepotError as exc:
        _answer(out, {"ok": False, "kind": type(exc).__name__, "message": exc.message})
        return 0
    except MemoryError:
        _answer(out, {"ok": False, "kind": "MemoryError", "message": ""})
        return 0
    except RecursionError:
        _answer(out, {"ok": False, "kind": "InvalidModelFile",
                      "message": "The model file nests its objects too deeply to be read."})
        return 0
    except Exception as exc:
        log.warning("inspection failed: %r", exc)
        _answer(out, {"ok": False, "kind": "Unexpected", "message": type(exc).__name__})
        return 0
    _answer(out, {"ok": True, "confined": confined, "inspection": report,
                  "served": {"format": "skops", "size": len(served)} if served else None}, served)
    return 0
