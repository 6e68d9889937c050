"""convert_pickle_to_skops, runtime_environment, and keeping `import app.formats` light."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from app.errors import UnsafeModel
from app.formats import convert_pickle_to_skops, inspect_file, load_predictor, runtime_environment
from tests.formats.test_pickle import OsSystem
from tests.formats.test_skops import CustomScaler


@pytest.mark.parametrize("name", ["logreg", "forest", "pipeline"])
def test_convert(name: str, request: pytest.FixtureRequest, rows: np.ndarray,
                 tmp_path: Path) -> None:
    model = request.getfixturevalue(name)
    src, dst = tmp_path / "m.joblib", tmp_path / "m.skops"
    joblib.dump(model, src, compress=3)
    assert convert_pickle_to_skops(src, dst) is True
    assert inspect_file(dst, trust=False, filename=dst.name).format == "skops"
    np.testing.assert_array_equal(load_predictor(dst, "skops").predict(rows), model.predict(rows))
    assert {p.name for p in tmp_path.iterdir()} == {"m.joblib", "m.skops"}  # no temp file left


def test_convert_refuses_untrusted_types(iris: Any, tmp_path: Path) -> None:
    """A class outside the allow-list is refused even in a trusted pickle, so there is nothing
    to convert, and no file is left behind."""
    model = make_pipeline(CustomScaler(), LogisticRegression(max_iter=500)).fit(*iris)
    src, dst = tmp_path / "m.joblib", tmp_path / "m.skops"
    joblib.dump(model, src)
    with pytest.raises(UnsafeModel, match=r"tests\.formats\.test_skops\.CustomScaler"):
        convert_pickle_to_skops(src, dst)
    assert not dst.exists()
    assert {p.name for p in tmp_path.iterdir()} == {"m.joblib"}


def test_convert_never_loads_denied_globals(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    src = tmp_path / "m.pkl"
    joblib.dump(OsSystem(marker), src)
    with pytest.raises(UnsafeModel):
        convert_pickle_to_skops(src, tmp_path / "m.skops")
    assert not marker.exists()


def test_runtime_environment() -> None:
    env = runtime_environment()
    assert env == {"python": platform.python_version(), "scikit-learn": sklearn.__version__,
                   "numpy": np.__version__}


def test_import_is_light() -> None:
    code = (
        "import sys, app.formats\n"
        "heavy = [m for m in ('sklearn', 'skops', 'onnx', 'onnxruntime', 'yaml', 'numpy', 'joblib')"
        " if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == ""
