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
