"""skops files: explicit trusted types, refusal of anything outside scikit-learn/numpy/scipy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import skops.io
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from app.errors import InvalidModelFile, UnsafeModel
from app.formats import inspect_file, load_predictor


class CustomScaler(TransformerMixin, BaseEstimator):
    """A type skops does not trust by default: the file must be refused, naming it."""

    def fit(self, X: Any, y: Any = None) -> CustomScaler:
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def transform(self, X: Any) -> Any:
        return np.asarray(X) * 2.0


@pytest.mark.parametrize("name", ["logreg", "forest", "pipeline"])
def test_skops_roundtrip(name: str, request: pytest.FixtureRequest, rows: np.ndarray,
                         tmp_path: Path) -> None:
    model = request.getfixturevalue(name)
    path = tmp_path / "m.skops"
    skops.io.dump(model, path)
    result = inspect_file(path, trust=False, filename=path.name)
    assert (result.format, result.format_detail) == ("skops", "skops")
    assert result.requires_trust is False and result.imported_globals == ()
    assert result.signature is not None
    assert result.signature.n_features == 4 and result.signature.classes == (0, 1, 2)
    predictor = load_predictor(path, "skops")
    np.testing.assert_array_equal(predictor.predict(rows), model.predict(rows))
    np.testing.assert_array_equal(predictor.predict_proba(rows), model.predict_proba(rows))


def test_untrusted_type_refused_by_name(iris: Any, tmp_path: Path) -> None:
    model = make_pipeline(CustomScaler(), LogisticRegression(max_iter=500)).fit(*iris)
    path = tmp_path / "custom.skops"
    skops.io.dump(model, path)
    for trust in (False, True):
        with pytest.raises(UnsafeModel, match=r"tests\.formats\.test_skops\.CustomScaler"):
            inspect_file(path, trust=trust)
    with pytest.raises(UnsafeModel, match="CustomScaler"):
        load_predictor(path, "skops")


def test_untrusted_function_refused(iris: Any, tmp_path: Path) -> None:
    from sklearn.preprocessing import FunctionTransformer

    model = make_pipeline(FunctionTransformer(np.negative), LogisticRegression(max_iter=500))
    model.fit(*iris)
    path = tmp_path / "fn.skops"
    skops.io.dump(model, path)
    # numpy.negative is within the allow-list: accepted with an explicit trusted list.
    assert inspect_file(path, trust=False).format == "skops"

    model = make_pipeline(FunctionTransformer(_double), LogisticRegression(max_iter=500))
    model.fit(*iris)
    skops.io.dump(model, path)
    with pytest.raises(UnsafeModel, match="_double"):
        inspect_file(path, trust=False)


def _double(X: Any) -> Any:
    return np.asarray(X) * 2


def test_damaged_skops(logreg: Any, tmp_path: Path) -> None:
    path = tmp_path / "m.skops"
    skops.io.dump(logreg, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidModelFile):
        inspect_file(path, trust=False)


def _renamed_type_file(path: Path, real: str, written: str, victim: Path) -> Path:
    """A skops file holding numpy's DataSource under another of its names, whose __del__
    removes the folder the file names (what an attacker would send, no trust needed)."""
    import gc
    import io
    import zipfile

    from numpy.lib import _datasource

    source = _datasource.DataSource(None)
    temp = source._destpath
    data = skops.io.dumps({"x": source})
    del source
    gc.collect()
    original = zipfile.ZipFile(io.BytesIO(data))
    schema = original.read("schema.json").decode()
    schema = schema.replace(f'"{real}"', f'"{written}"').replace(temp, str(victim))
    with zipfile.ZipFile(path, "w") as out:
        for info in original.infolist():
            out.writestr(info.filename, schema if info.filename == "schema.json"
                         else original.read(info))
    return path


def test_a_denied_class_under_another_name_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    import gc

    victim = tmp_path / "victim"
    victim.mkdir()
    path = _renamed_type_file(tmp_path / "evil.skops", "numpy.lib.npyio",
                              "numpy.lib._datasource", victim)
    with pytest.raises(UnsafeModel, match=r"numpy\.lib\._datasource\.DataSource"):
        inspect_file(path, trust=False)
    with pytest.raises(UnsafeModel, match="DataSource"):
        load_predictor(path, "skops")
    gc.collect()
    assert victim.is_dir()


def test_a_skops_file_inside_an_mlflow_zip_gets_the_zip_checks(logreg: Any,
                                                                 tmp_path: Path) -> None:
    import io
    import zipfile

    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        for info in (src := zipfile.ZipFile(io.BytesIO(skops.io.dumps(logreg)))).infolist():
            z.writestr(info, src.read(info))
        z.writestr("../../evil", b"x")
    path = tmp_path / "m.zip"
    mlmodel = b"flavors:\n  sklearn:\n    pickled_model: model.skops\n    " \
              b"serialization_format: skops\n"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("MLmodel", mlmodel)
        z.writestr("model.skops", inner.getvalue())
    with pytest.raises(UnsafeModel):
        inspect_file(path, trust=False)
    with pytest.raises(UnsafeModel):
        load_predictor(path, "mlflow")
