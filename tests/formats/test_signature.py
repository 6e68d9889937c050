"""Signature: to_dict/from_dict, MLflow column specs, malformed input, declared vs model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import joblib
import pytest

from app.errors import Unprocessable
from app.formats import Signature, inspect_file


def test_roundtrip() -> None:
    sig = Signature(3, ("a", "b", "c"), "float32", ("predict", "predict_proba"), (0, "x", True),
                    "classification")
    d = sig.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert Signature.from_dict(d) == sig


def test_defaults_and_count_from_names() -> None:
    sig = Signature.from_dict({"feature_names": ["a", "b"]})
    assert sig == Signature(2, ("a", "b"), "float64", ("predict",), None, None)


def test_mlflow_column_specs() -> None:
    columns = [{"type": "double", "name": "x"}, {"type": "double", "name": "y", "required": True}]
    forms = ({"inputs": columns}, {"inputs": json.dumps(columns)}, json.dumps({"inputs": columns}))
    for form in forms:
        sig = Signature.from_dict(form)
        assert (sig.n_features, sig.feature_names, sig.input_dtype) == (2, ("x", "y"), "float64")


def test_mlflow_tensor_spec() -> None:
    spec = [{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 7]}}]
    sig = Signature.from_dict({"inputs": json.dumps(spec)})
    assert (sig.n_features, sig.feature_names, sig.input_dtype) == (7, None, "float32")


@pytest.mark.parametrize("bad", [
    [],
    "not json",
    {"n_features": "4"},
    {"n_features": 0},
    {"n_features": True},
    {"n_features": 3, "feature_names": ["a", "b"]},
    {"feature_names": ["a", "a"]},
    {"feature_names": "abc"},
    {"input_dtype": "complex128"},
    {"outputs": ["predict", "explain"]},
    {"outputs": []},
    {"task": "clustering"},
    {"classes": [[1, 2]]},
    {"colour": "blue"},
    {"inputs": []},
    {"inputs": "[{\"type\": \"datetime\", \"name\": \"t\"}]"},
    {"inputs": [{"type": "double", "name": "a"}, {"type": "double"}]},
    {"inputs": "{broken"},
])
def test_malformed(bad: Any) -> None:
    with pytest.raises(Unprocessable) as info:
        Signature.from_dict(bad)
    assert info.value.message.endswith(".")


def test_declared_count_disagrees_with_estimator(logreg: Any, tmp_path: Path) -> None:
    path = tmp_path / "m.joblib"
    joblib.dump(logreg, path)
    with pytest.raises(Unprocessable) as info:
        inspect_file(path, trust=True, declared_signature=Signature.from_dict({"n_features": 5}))
    assert type(info.value) is Unprocessable
    assert "5" in info.value.message and "4" in info.value.message


def test_declared_signature_wins_for_inputs(logreg: Any, tmp_path: Path) -> None:
    path = tmp_path / "m.joblib"
    joblib.dump(logreg, path)
    declared = Signature.from_dict({"feature_names": ["sl", "sw", "pl", "pw"],
                                    "outputs": ["predict"]})
    sig = inspect_file(path, trust=True, declared_signature=declared).signature
    assert sig is not None
    assert sig.feature_names == ("sl", "sw", "pl", "pw")
    # What the model can do comes from the model itself.
    assert sig.outputs == ("predict", "predict_proba")
    assert sig.classes == (0, 1, 2)
