"""MLflow sklearn models as a zip: manifest variants, member checks, bombs, trust."""

from __future__ import annotations

import pickle
import stat
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sklearn
import skops.io

from app.errors import InvalidModelFile, TrustRequired, Unprocessable, UnsafeModel
from app.formats import ZipLimits, inspect_file, load_predictor
from tests.formats.conftest import mlmodel_yaml, served_predictor, write_mlflow, write_zip
from tests.formats.test_pickle import OsSystem


@pytest.mark.parametrize("key", ["model_path", "data"])
@pytest.mark.parametrize("folder", ["model/", ""])
def test_mlflow_zip(key: str, folder: str, logreg: Any, rows: np.ndarray, tmp_path: Path) -> None:
    path = write_mlflow(tmp_path / "m.zip", logreg, key=key, folder=folder)
    with pytest.raises(TrustRequired, match="LogisticRegression"):
        inspect_file(path, trust=False, filename="m.zip")
    result = inspect_file(path, trust=True, filename="m.zip")
    assert (result.format, result.format_detail, result.requires_trust) == (
        "mlflow", "mlflow-sklearn", True)
    assert "sklearn.linear_model._logistic.LogisticRegression" in result.imported_globals
    assert result.signature is not None
    assert result.signature.feature_names == ("f0", "f1", "f2", "f3")
    assert result.signature.classes == (0, 1, 2)
    assert result.environment == {"python": "3.11.7", "scikit-learn": sklearn.__version__}
    predictor = served_predictor(path, tmp_path)
    np.testing.assert_array_equal(predictor.predict(rows), logreg.predict(rows))
    np.testing.assert_array_equal(predictor.predict_proba(rows), logreg.predict_proba(rows))
    with pytest.raises(InvalidModelFile, match="never open pickles"):
        load_predictor(path, "mlflow")


def test_old_pyfunc_only_manifest(linreg: Any, iris: Any, tmp_path: Path) -> None:
    """MLflow 1.x: `data:` key, python_function flavor only, no signature."""
    path = write_mlflow(tmp_path / "m.zip", linreg, key="data", sklearn_flavor=False,
                        signature_columns=None)
    result = inspect_file(path, trust=True)
    assert result.signature is not None
    assert (result.signature.n_features, result.signature.feature_names) == (3, None)
    assert result.signature.task == "regression"
    X = iris[0][:5, 1:]
    np.testing.assert_array_equal(served_predictor(path, tmp_path).predict(X),
                                  linreg.predict(X))


def test_skops_serialization(logreg: Any, rows: np.ndarray, tmp_path: Path) -> None:
    path = write_mlflow(tmp_path / "m.zip", logreg, model_bytes=skops.io.dumps(logreg),
                        serialization="skops")
    result = inspect_file(path, trust=False)
    assert result.requires_trust is False and result.imported_globals == ()
    predictor = load_predictor(path, "mlflow")
    np.testing.assert_array_equal(predictor.predict(rows), logreg.predict(rows))


def test_manifest_signature_must_match_model(logreg: Any, tmp_path: Path) -> None:
    path = write_mlflow(tmp_path / "m.zip", logreg, signature_columns=5)
    with pytest.raises(Unprocessable, match=r"5 features.*takes 4"):
        inspect_file(path, trust=True)


def test_manifest_sklearn_version_warns(logreg: Any, tmp_path: Path) -> None:
    path = write_mlflow(tmp_path / "m.zip", logreg, sklearn_version="1.0.2")
    result = inspect_file(path, trust=True)
    assert any("1.0.2" in w for w in result.warnings)


def test_not_sklearn_flavor(logreg: Any, tmp_path: Path) -> None:
    path = write_mlflow(tmp_path / "m.zip", logreg, sklearn_flavor=False,
                        loader_module="mlflow.pyfunc.model")
    with pytest.raises(InvalidModelFile, match="scikit-learn flavor"):
        inspect_file(path, trust=True)


def test_missing_model_file(logreg: Any, tmp_path: Path) -> None:
    path = write_zip(tmp_path / "m.zip", {"model/MLmodel": mlmodel_yaml().encode()})
    with pytest.raises(InvalidModelFile, match="no such file"):
        inspect_file(path, trust=True)


def test_two_models_in_one_zip(logreg: Any, tmp_path: Path) -> None:
    data = pickle.dumps(logreg)
    path = write_zip(tmp_path / "m.zip", {
        "a/MLmodel": mlmodel_yaml().encode(), "a/model.pkl": data,
        "b/MLmodel": mlmodel_yaml().encode(), "b/model.pkl": data,
    })
    with pytest.raises(InvalidModelFile, match="more than one"):
        inspect_file(path, trust=True)


def test_bad_yaml(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "m.zip", {"MLmodel": b"flavors: [unclosed\n"})
    with pytest.raises(InvalidModelFile, match="YAML"):
        inspect_file(path, trust=True)


def test_hostile_pickle_inside(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = write_mlflow(tmp_path / "m.zip", None, model_bytes=pickle.dumps(OsSystem(marker)))
    for trust in (False, True):
        with pytest.raises(UnsafeModel, match="system"):
            inspect_file(path, trust=trust)
    with pytest.raises(InvalidModelFile, match="never open pickles"):
        load_predictor(path, "mlflow")
    assert not marker.exists()


# --- hostile archives ------------------------------------------------------------------------
def _valid_members(model: Any) -> dict[str, bytes]:
    return {"model/MLmodel": mlmodel_yaml().encode(), "model/model.pkl": pickle.dumps(model)}


@pytest.mark.parametrize("name", ["../evil", "model/../../evil", "/abs/evil", "C:/evil",
                                  "..\\evil", "model/..\\..\\evil"])
def test_member_names_that_escape(name: str, logreg: Any, tmp_path: Path) -> None:
    path = write_zip(tmp_path / "m.zip", {**_valid_members(logreg), name: b"x"})
    for trust in (False, True):
        with pytest.raises(UnsafeModel, match="outside the archive"):
            inspect_file(path, trust=trust)
    assert not (tmp_path.parent / "evil").exists()


def test_symlink_member(logreg: Any, tmp_path: Path) -> None:
    path = write_zip(tmp_path / "m.zip", _valid_members(logreg))
    with zipfile.ZipFile(path, "a") as zf:
        info = zipfile.ZipInfo("model/link")
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(UnsafeModel, match="symbolic link"):
        inspect_file(path, trust=True)


def test_zip_bomb(logreg: Any, tmp_path: Path) -> None:
    path = write_zip(tmp_path / "m.zip", {**_valid_members(logreg),
                                          "model/padding.bin": bytes(50 << 20)})
    with pytest.raises(UnsafeModel, match="zip bomb"):
        inspect_file(path, trust=True)


def test_member_and_size_caps(logreg: Any, tmp_path: Path) -> None:
    members = _valid_members(logreg)
    path = write_zip(tmp_path / "m.zip", {**members, **{f"model/f{i}": b"x" for i in range(10)}})
    with pytest.raises(UnsafeModel, match="12 members"):
        inspect_file(path, trust=True, limits=ZipLimits(max_members=5))
    with pytest.raises(UnsafeModel, match="over the limit"):
        inspect_file(path, trust=True, limits=ZipLimits(max_total_bytes=100))
    assert inspect_file(path, trust=True).format == "mlflow"


def test_lying_central_directory(logreg: Any, tmp_path: Path) -> None:
    """A member whose data expands past the size the directory declares is cut off."""
    from app.formats.zip_safety import read_member

    path = write_zip(tmp_path / "m.zip", {"big": bytes(5 << 20)})
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("big")
        info.file_size = 1000  # what a forged central directory would claim
        with pytest.raises((UnsafeModel, InvalidModelFile)):
            read_member(zf, info, ZipLimits())
