"""The aarch64 binary answers as the x86-64 one: the same models and rows, sent to both binaries.

Each binary serves two models (a logistic regression, whose ONNX twin is float64, and a forest,
whose twin is float32), each as two versions: one served by scikit-learn (tag twin=off) and one by
its ONNX twin through onnxruntime. Every version predicts the same rows, the iris data and random
rows around it (near class borders too), with probabilities, on both binaries.

Marked `arm64` (run with `-m arm64`): it needs dist/modeldepot-linux-aarch64 from
packaging/build-linux-arm64.sh (or MODELDEPOT_AARCH64_BINARY) beside the native dist/modeldepot
(or MODELDEPOT_NATIVE_BINARY). On an x86-64 machine the aarch64 one runs under qemu-user.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier

from tests.bundle.client import engine, predict_v1, push
from tests.bundle.conftest import ROOT, Bundle, elf_machine, require_binary, scaled
from tests.live import wait_until
from tests.models import iris_model, write_skops

pytestmark = pytest.mark.arm64

NATIVE_ENV = "MODELDEPOT_NATIVE_BINARY"
AARCH64_ENV = "MODELDEPOT_AARCH64_BINARY"
AARCH64 = 183  # ELF e_machine
TWIN_TIMEOUT = 60.0  # the registry's pool worker imports scikit-learn and skl2onnx cold
# Each model twice: by scikit-learn (the tag twin=off), and by what serves it by default once its
# compile job ran: a forest's ONNX twin; a linear model's arrays through numpy, which give
# scikit-learn's answers bit for bit and so report the engine "scikit-learn".
ENGINES = ("scikit-learn", "compiled")
COMPILED = {"linear": "scikit-learn", "forest": "onnxruntime-twin"}
# How far, in units of float64's epsilon, an aarch64 probability may be from the x86-64 one.
RELATIVE_ULPS = {"forest": 0, "linear": 4}


def models() -> dict[str, Any]:
    X, y = load_iris(return_X_y=True)
    return {"linear": iris_model(),
            "forest": RandomForestClassifier(n_estimators=20, max_depth=5,
                                             random_state=0).fit(X, y)}


def rows() -> np.ndarray:
    X, _ = load_iris(return_X_y=True)
    rng = np.random.default_rng(22)
    around = rng.uniform(X.min(axis=0) - 0.5, X.max(axis=0) + 0.5, size=(250, X.shape[1]))
    return np.vstack([X, np.round(around, 3)])


def serve_models(bundle: Bundle, files: dict[str, Path]) -> dict[tuple[str, str], int]:
    """Push each model twice: {(model, engine): version}."""
    versions = {}
    for name, path in files.items():
        versions[name, "scikit-learn"] = push(bundle, name, path,
                                              {"tags": {"twin": "off"}})["version"]
        versions[name, "compiled"] = push(bundle, name, path, {})["version"]
    return versions


def answers(binary: Path, base: Path, files: dict[str, Path], X: np.ndarray
            ) -> dict[tuple[str, str], dict[str, Any]]:
    bundle = Bundle(binary, base).start()
    try:
        bundle.wait_ready()
        versions = serve_models(bundle, files)
        for (name, served_by), version in versions.items():
            wanted = COMPILED[name] if served_by == "compiled" else served_by
            wait_until(lambda n=name, v=version, w=wanted: engine(bundle, n, v) == w,  # type: ignore[misc]
                       scaled(TWIN_TIMEOUT), f"{name} version {version} served by {wanted}",
                       interval=0.5)
        return {key: predict_v1(bundle, key[0], X, version, proba=True)
                for key, version in versions.items()}
    finally:
        bundle.cleanup()


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[tuple[dict[str, Any], dict[Any, Any], dict[Any, Any]]]:
    native = require_binary(Path(os.environ.get(NATIVE_ENV) or ROOT / "dist/modeldepot").resolve())
    aarch64 = require_binary(Path(os.environ.get(AARCH64_ENV)
                                  or ROOT / "dist/modeldepot-linux-aarch64").resolve())
    assert elf_machine(aarch64) == AARCH64, f"{aarch64} is not an aarch64 program"
    assert elf_machine(native) not in (None, AARCH64), f"{native} is not a native program"
    files_dir = tmp_path_factory.mktemp("models")
    fitted = models()
    files = {name: write_skops(files_dir / f"{name}.skops", model)
             for name, model in fitted.items()}
    X = rows()
    yield (fitted,
           answers(native, tmp_path_factory.mktemp("native"), files, X),
           answers(aarch64, tmp_path_factory.mktemp("aarch64"), files, X))


@pytest.mark.parametrize("name", ["linear", "forest"])
@pytest.mark.parametrize("served_by", ENGINES)
def test_aarch64_predicts_what_x86_64_predicts(both: Any, name: str, served_by: str) -> None:
    fitted, native, aarch64 = both
    ours, theirs = native[name, served_by], aarch64[name, served_by]
    X = rows()
    # Not two equally wrong answers: the native binary agrees with the model fitted here.
    expected = fitted[name].predict(X).tolist()
    assert ours["predictions"] == expected
    assert theirs["predictions"] == ours["predictions"]
    # Probabilities: the forest's (comparisons, sums) to the last bit; the logistic regression's
    # go through exp and a softmax, whose last bit differs between x86-64's and aarch64's math
    # kernels (measured: 1 ulp, a relative 1e-16), so to RELATIVE_ULPS of it and no more.
    theirs_p, ours_p = np.asarray(theirs["probabilities"]), np.asarray(ours["probabilities"])
    relative = np.abs(theirs_p - ours_p) / np.maximum(np.abs(ours_p), np.finfo(float).tiny)
    assert relative.max() <= RELATIVE_ULPS[name] * np.finfo(float).eps, (
        f"largest relative difference {relative.max():.3g}")
