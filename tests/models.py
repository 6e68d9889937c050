"""Real small models written to disk in each supported format, for tests and benchmarks."""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression


def iris_model(max_iter: int = 300, C: float = 1.0) -> LogisticRegression:
    X, y = load_iris(return_X_y=True)
    return LogisticRegression(max_iter=max_iter, C=C).fit(X, y)


def iris_rows(n: int = 5) -> np.ndarray:
    X, _ = load_iris(return_X_y=True)
    return X[:n]


def write_joblib(path: Path, model: Any | None = None) -> Path:
    joblib.dump(model if model is not None else iris_model(), path)
    return path


def write_skops(path: Path, model: Any | None = None) -> Path:
    import skops.io

    skops.io.dump(model if model is not None else iris_model(), path)
    return path


class _Marker:
    """A pickle payload that would create a file when loaded: it must never be loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        import os

        return (os.system, (f"touch {self.marker}",))


def write_hostile_pickle(path: Path, marker: Path) -> Path:
    path.write_bytes(pickle.dumps(_Marker(marker)))
    return path


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def write_mlflow_zip(path: Path, model: Any | None = None, key: str = "model_path") -> Path:
    model = model if model is not None else iris_model()
    signature = json.dumps([{"type": "double", "name": f"f{i}"} for i in range(4)])
    mlmodel = (
        "artifact_path: model\nflavors:\n  python_function:\n    loader_module: mlflow.sklearn\n"
        f"    {key}: model.pkl\n    python_version: 3.11.7\n"
        "  sklearn:\n    pickled_model: model.pkl\n"
        "    serialization_format: cloudpickle\n    sklearn_version: 1.9.1\n"
        f"signature:\n  inputs: '{signature}'\n"
        '  outputs: \'[{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}]\'\n'
    )
    buf = io.BytesIO()
    pickle.dump(model, buf)
    return write_zip(path, {"model/MLmodel": mlmodel.encode(), "model/model.pkl": buf.getvalue()})
