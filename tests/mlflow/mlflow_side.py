"""The MLflow side of the MLflow mirror tests, run as its own process (`python -m
tests.mlflow.mlflow_side COMMAND URL ...`) so that MLflow's import-time warnings and background
threads stay out of the test process (tests run with warnings as errors).

register URL        logs and registers the test models with the MLflow client; prints JSON
                    {"<name>": {"<version>": "<run id>"}}
predict URL URI...  prints JSON {uri: predictions} from mlflow.pyfunc.load_model(uri) on the
                    rows of tests.models.iris_rows(20), with the iris feature names
log URL NAME COUNT  logs and registers COUNT new skops versions of NAME (benchmarks/
                    bench_mirror.py); prints JSON [version, ...]
"""

from __future__ import annotations

import json
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
ROWS = 20
# Logged without a pip-requirements inference (slow, and nothing here installs them).
REQUIREMENTS = ["scikit-learn"]
NO_FLAVOR_MLMODEL = """\
flavors:
  python_function:
    loader_module: some_other_library
    data: model.bin
    python_version: 3.11.7
mlflow_version: 3.0.0
"""


def _iris() -> tuple[Any, Any]:
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True)
    return frame.data, frame.target


def _log(name: str, model: Any, serialization: str, trusted: list[str] | None = None) -> Any:
    import mlflow
    import mlflow.sklearn

    x, y = _iris()
    with mlflow.start_run() as run:
        mlflow.log_metric("accuracy", float(model.score(x, y)))
        mlflow.log_param("estimator", type(model).__name__)
        extra = {"skops_trusted_types": trusted} if serialization == "skops" else {}
        signature = mlflow.models.infer_signature(x, model.predict(x))
        info = mlflow.sklearn.log_model(model, name="model", serialization_format=serialization,
                                        signature=signature, registered_model_name=name,
                                        pip_requirements=REQUIREMENTS, **extra)
    return run.info.run_id, info.registered_model_version


def register(url: str) -> dict[str, dict[str, str]]:
    import mlflow
    from mlflow import MlflowClient
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    mlflow.set_tracking_uri(url)
    x, y = _iris()
    done: dict[str, dict[str, str]] = {}

    def note(name: str, run_version: tuple[Any, Any]) -> None:
        done.setdefault(name, {})[str(run_version[1])] = str(run_version[0])

    # iris v1: a linear model; v2: a forest (skops needs its tree types listed as trusted)
    note("iris", _log("iris", LogisticRegression(max_iter=500).fit(x, y), "skops", []))
    forest = RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0).fit(x, y)
    from skops.io import get_untrusted_types

    trusted = get_untrusted_types(data=__import__("skops.io").io.dumps(forest))
    note("iris", _log("iris", forest, "skops", trusted))
    note("iris-cloudpickle", _log("iris-cloudpickle",
                                  LogisticRegression(C=0.5, max_iter=500).fit(x, y),
                                  "cloudpickle"))
    note("iris-pickle", _log("iris-pickle", LogisticRegression(C=0.2, max_iter=500).fit(x, y),
                             "pickle"))
    # cloudpickle carries a lambda by value (a code object): refused whatever --trust says
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    scaled = make_pipeline(FunctionTransformer(lambda v: v * 1.0),
                           LogisticRegression(max_iter=500)).fit(x, y)
    note("iris-lambda", _log("iris-lambda", scaled, "cloudpickle"))
    # A model folder with no scikit-learn flavor, registered from a run's artifacts
    client = MlflowClient()
    with tempfile.TemporaryDirectory() as folder, mlflow.start_run() as run:
        (Path(folder) / "MLmodel").write_text(NO_FLAVOR_MLMODEL)
        (Path(folder) / "model.bin").write_bytes(b"not a scikit-learn model")
        mlflow.log_artifacts(folder, "model")
        client.create_registered_model("noflavor")
        version = client.create_model_version("noflavor", f"{run.info.artifact_uri}/model",
                                              run.info.run_id)
        note("noflavor", (run.info.run_id, version.version))
    return done


def log_versions(url: str, name: str, count: int) -> list[int]:
    import mlflow
    from sklearn.linear_model import LogisticRegression

    mlflow.set_tracking_uri(url)
    x, y = _iris()
    return [int(_log(name, LogisticRegression(C=0.1 * (i + 1), max_iter=500).fit(x, y),
                     "skops", [])[1]) for i in range(count)]


def predict(url: str, uris: list[str]) -> dict[str, list[Any]]:
    import mlflow
    import mlflow.pyfunc
    import pandas as pd

    from tests.models import iris_rows

    mlflow.set_tracking_uri(url)
    frame = pd.DataFrame(iris_rows(ROWS), columns=FEATURES)
    return {uri: mlflow.pyfunc.load_model(uri).predict(frame).tolist() for uri in uris}


def main() -> None:
    warnings.simplefilter("ignore")
    command, url, *rest = sys.argv[1:]
    if command == "register":
        out: Any = register(url)
    elif command == "log":
        out = log_versions(url, rest[0], int(rest[1]))
    else:
        out = predict(url, rest)
    print("RESULT " + json.dumps(out))


if __name__ == "__main__":
    main()
