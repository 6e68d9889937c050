"""Real small models and real (hostile) files for the format tests, all built in tmp_path."""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sklearn
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


@pytest.fixture(scope="session")
def iris() -> tuple[np.ndarray, np.ndarray]:
    return load_iris(return_X_y=True)


@pytest.fixture(scope="session")
def rows(iris: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    X, _ = iris
    return X[::10]


@pytest.fixture(scope="session")
def logreg(iris: tuple[np.ndarray, np.ndarray]) -> LogisticRegression:
    return LogisticRegression(max_iter=500).fit(*iris)


@pytest.fixture(scope="session")
def forest(iris: tuple[np.ndarray, np.ndarray]) -> RandomForestClassifier:
    return RandomForestClassifier(n_estimators=5, random_state=0).fit(*iris)


@pytest.fixture(scope="session")
def linreg(iris: tuple[np.ndarray, np.ndarray]) -> LinearRegression:
    X, y = iris
    return LinearRegression().fit(X[:, 1:], X[:, 0])


@pytest.fixture(scope="session")
def pipeline(iris: tuple[np.ndarray, np.ndarray]) -> Any:
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(*iris)


def mlmodel_yaml(
    *,
    key: str = "model_path",
    model_file: str = "model.pkl",
    signature_columns: int | None = 4,
    serialization: str = "cloudpickle",
    sklearn_version: str | None = None,
    sklearn_flavor: bool = True,
    loader_module: str = "mlflow.sklearn",
) -> str:
    """An MLmodel manifest shaped like MLflow 2.x writes it (or 1.x with key="data")."""
    lines = [
        "artifact_path: model",
        "flavors:",
        "  python_function:",
        "    env:",
        "      conda: conda.yaml",
        "      virtualenv: python_env.yaml",
        f"    loader_module: {loader_module}",
        f"    {key}: {model_file}",
        "    predict_fn: predict",
        "    python_version: 3.11.7",
    ]
    if sklearn_flavor:
        lines += [
            "  sklearn:",
            "    code: null",
            f"    pickled_model: {model_file}",
            f"    serialization_format: {serialization}",
            f"    sklearn_version: {sklearn_version or sklearn.__version__}",
        ]
    lines += ["mlflow_version: 2.22.0", "model_uuid: b170b2856b8a4fd0a1d2b9d3c4e5f6a7"]
    if signature_columns:
        inputs = json.dumps(
            [{"type": "double", "name": f"f{i}", "required": True}
             for i in range(signature_columns)]
        )
        outputs = json.dumps([{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}])
        lines += ["signature:", f"  inputs: '{inputs}'", f"  outputs: '{outputs}'",
                  "  params: null"]
    return "\n".join(lines) + "\n"


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=zipfile.ZIP_DEFLATED)
    return path


def write_mlflow(
    path: Path,
    model: Any,
    *,
    folder: str = "model/",
    model_bytes: bytes | None = None,
    **manifest: Any,
) -> Path:
    data = model_bytes if model_bytes is not None else pickle.dumps(model)
    return write_zip(
        path,
        {
            f"{folder}MLmodel": mlmodel_yaml(**manifest).encode(),
            f"{folder}model.pkl": data,
            f"{folder}conda.yaml": b"name: mlflow-env\ndependencies:\n  - python=3.11.7\n",
            f"{folder}requirements.txt": f"scikit-learn=={sklearn.__version__}\n".encode(),
        },
    )


def zipped(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def served_predictor(path: Path, tmp_path: Path) -> Any:
    """What a server loads for a trusted pickle (or pickled MLflow model): the skops copy the
    sandbox makes, made here in-process by the same functions the sandbox child runs."""
    from app.formats import load_predictor
    from app.formats.inspection import examine_file
    from app.formats.sandbox_child import convert

    examined = examine_file(path, trust=True)
    assert examined.pickled
    served = tmp_path / f"{path.name}.served.skops"
    served.write_bytes(convert(examined))
    return load_predictor(served, "skops", signature=examined.inspection.signature)
