"""ONNX twins: converted by skl2onnx, checked row by row, and answering as the original does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_iris, make_classification, make_regression
from sklearn.ensemble import (
    GradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from app.errors import InvalidModelFile
from app.formats.signature import Signature, signature_from_estimator
from app.formats.twin import PROBA_ARGMAX, TwinPredictor, load_twin
from app.formats.twin_samples import (
    NoDatasetRows,
    dataset_rows,
    random_rows,
    threshold_rows,
)
from app.formats.twin_verify import FAILED, UNSUPPORTED, VERIFIED, Outcome, build_and_verify

X_BIN, Y_BIN = make_classification(n_samples=300, n_features=6, n_informative=4, random_state=0)


def twin_of(model: Any, rows: np.ndarray | None = None) -> tuple[Outcome, TwinPredictor | None]:
    signature = signature_from_estimator(model)
    sample = rows if rows is not None else random_rows(signature.n_features or 1)
    outcome = build_and_verify(model, signature, sample, {"rows_from": "test"})
    if outcome.status != VERIFIED:
        return outcome, None
    assert outcome.onnx_bytes is not None
    return outcome, load_twin(outcome.onnx_bytes, signature, outcome.report)


def assert_same_answers(model: Any, twin: TwinPredictor, X: np.ndarray) -> None:
    """What the inference server would put in JSON: equal labels of equal dtype, close probas."""
    expected, got = np.asarray(model.predict(X)), twin.predict(X)
    assert got.tolist() == expected.tolist()
    assert got.dtype.kind == expected.dtype.kind or {got.dtype.kind, expected.dtype.kind} <= {
        "O", "U"}
    if hasattr(model, "predict_proba"):
        np.testing.assert_allclose(twin.predict_proba(X), model.predict_proba(X), atol=1e-5,
                                   rtol=0)


def test_a_forest_twin_is_float32_labels_from_probabilities_and_matches_on_many_rows() -> None:
    model = RandomForestClassifier(n_estimators=30, max_depth=6, random_state=0).fit(X_BIN, Y_BIN)
    outcome, twin = twin_of(model)
    assert twin is not None, outcome.report
    report = outcome.report
    assert report["precision"] == "float32"
    assert report["label_rule"] == PROBA_ARGMAX
    assert report["label_mismatches"] == 0 and report["max_proba_diff"] <= 1e-5
    assert report["label_dtype"] == "<i8" and report["converter"].startswith("skl2onnx")
    rng = np.random.default_rng(1)
    assert_same_answers(model, twin, np.vstack([X_BIN, rng.normal(0, 3, size=(2000, 6))]))


def test_vote_ties_of_a_fully_grown_forest_go_to_the_first_class_as_in_scikit_learn() -> None:
    model = RandomForestClassifier(n_estimators=20, random_state=0).fit(X_BIN[:100], Y_BIN[:100])
    rows = np.random.default_rng(2).normal(0, 3, size=(3000, 6))
    ties = np.isclose(model.predict_proba(rows)[:, 0], 0.5).sum()
    assert ties > 20  # the case this rule exists for really occurs in these rows
    outcome, twin = twin_of(model)
    assert twin is not None, outcome.report
    assert_same_answers(model, twin, rows)


def test_rows_on_split_thresholds_are_part_of_the_check() -> None:
    model = RandomForestClassifier(n_estimators=5, max_depth=4, random_state=0).fit(X_BIN, Y_BIN)
    edges = threshold_rows(model, 6)
    assert edges is not None and edges.shape[1] == 6
    tree = model.estimators_[0].tree_
    threshold = float(tree.threshold[0])
    column = edges[:, int(tree.feature[0])]
    below = float(np.nextafter(np.float32(threshold), np.float32(-np.inf)))
    assert {threshold, below} & set(column.tolist())
    outcome, twin = twin_of(model, np.vstack([random_rows(6), edges]))
    assert twin is not None, outcome.report
    assert_same_answers(model, twin, edges)


def test_linear_models_and_pipelines_get_float64_twins_that_match_to_the_last_bit() -> None:
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X_BIN, Y_BIN)
    outcome, twin = twin_of(model)
    assert twin is not None, outcome.report
    assert outcome.report["precision"] == "float64" and "label_rule" not in outcome.report
    assert outcome.report["max_proba_diff"] < 1e-12
    assert_same_answers(model, twin, X_BIN)


def test_string_and_float_class_labels_come_back_as_the_original_gives_them() -> None:
    data = load_iris()
    words = LogisticRegression(max_iter=300).fit(data.data, data.target_names[data.target])
    outcome, twin = twin_of(words)
    assert twin is not None, outcome.report
    assert_same_answers(words, twin, data.data)
    assert twin.predict(data.data[:1]).tolist() == ["setosa"]

    floats = RandomForestClassifier(n_estimators=5, random_state=0).fit(X_BIN, Y_BIN * 2.0)
    outcome, twin = twin_of(floats)
    assert twin is not None, outcome.report
    assert outcome.report["label_dtype"] == "<f8"
    assert twin.predict(X_BIN[:5]).dtype == np.float64
    assert_same_answers(floats, twin, X_BIN)


def test_regressors_agree_within_the_relative_tolerance() -> None:
    X, y = make_regression(n_samples=200, n_features=5, random_state=0)
    model = RandomForestRegressor(n_estimators=10, max_depth=5, random_state=0).fit(X, y)
    outcome, twin = twin_of(model)
    assert twin is not None, outcome.report
    assert outcome.report["max_relative_diff"] <= 1e-5
    got = twin.predict(X)
    assert got.dtype == np.float64 and got.shape == (200,)
    np.testing.assert_allclose(got, model.predict(X), rtol=1e-5)


def test_one_run_for_labels_and_probabilities_equals_two() -> None:
    for model in (GradientBoostingClassifier(n_estimators=10, random_state=0).fit(X_BIN, Y_BIN),
                  RandomForestClassifier(n_estimators=5, random_state=0).fit(X_BIN, Y_BIN)):
        outcome, twin = twin_of(model)
        assert twin is not None, outcome.report
        labels, proba = twin.predict_with_proba(X_BIN)
        assert proba is not None
        assert labels.tolist() == twin.predict(X_BIN).tolist()
        np.testing.assert_array_equal(proba, twin.predict_proba(X_BIN))


def test_a_classifier_without_predict_proba_gets_a_twin_without_probabilities() -> None:
    model = SVC().fit(X_BIN, Y_BIN)  # skl2onnx still names its scores "probabilities"
    outcome, twin = twin_of(model)
    assert twin is not None, outcome.report
    assert not twin.has_proba and "max_proba_diff" not in outcome.report
    labels, proba = twin.predict_with_proba(X_BIN[:3])
    assert proba is None and labels.tolist() == model.predict(X_BIN[:3]).tolist()


def test_a_model_the_converter_lacks_is_unsupported_with_the_reason() -> None:
    X, y = make_regression(n_samples=50, n_features=3, random_state=0)
    outcome, twin = twin_of(KernelRidge().fit(X, y))
    assert twin is None and outcome.status == UNSUPPORTED and outcome.onnx_bytes is None
    assert "skl2onnx cannot convert it" in outcome.report["reason"]
    assert [a["result"] for a in outcome.attempts] == ["unsupported", "unsupported"]


def test_a_twin_that_answers_differently_fails_and_says_where() -> None:
    X, y = make_regression(n_samples=100, n_features=3, random_state=0)
    # Leaf values beyond float32's range: the float32 graph answers inf.
    model = RandomForestRegressor(n_estimators=3, random_state=0).fit(X, y * 1e38 + 1e39)
    outcome, twin = twin_of(model)
    assert twin is None and outcome.status == FAILED and outcome.onnx_bytes is None
    assert "differ" in outcome.report["reason"]
    assert any(a["result"] == "mismatch" for a in outcome.attempts)


def test_models_without_a_feature_count_or_taking_text_are_unsupported() -> None:
    model = LogisticRegression().fit(X_BIN, Y_BIN)
    text = Signature(6, None, "str", ("predict",), None, None)
    nameless = Signature(None, None, "float64", ("predict",), None, None)
    for signature in (text, nameless):
        outcome = build_and_verify(model, signature, random_rows(6), {})
        assert outcome.status == UNSUPPORTED and outcome.report["reason"]


def test_a_twin_that_onnxruntime_refuses_or_lacks_classes_is_an_invalid_model() -> None:
    model = RandomForestClassifier(n_estimators=3, random_state=0).fit(X_BIN, Y_BIN)
    outcome, _ = twin_of(model)
    assert outcome.onnx_bytes is not None
    with pytest.raises(InvalidModelFile):
        TwinPredictor(b"not onnx", signature_from_estimator(model), label_dtype=None)
    classless = Signature(6, None, "float64", ("predict", "predict_proba"), None,
                          "classification")
    with pytest.raises(InvalidModelFile):
        TwinPredictor(outcome.onnx_bytes, classless, label_dtype="<i8", label_rule=PROBA_ARGMAX)


def test_dataset_rows_pick_the_feature_columns_in_the_models_order(tmp_path: Path) -> None:
    csv = tmp_path / "data.csv"
    csv.write_text("b,target,a\n1,0,2\n3,1,4\nx,0,5\n,1,6\n7,0,8\n")
    by_name = dataset_rows(csv, 2, ("a", "b"), None)
    assert by_name.tolist() == [[2.0, 1.0], [4.0, 3.0], [8.0, 7.0]]  # bad rows skipped
    by_target = dataset_rows(csv, 2, None, "target")
    assert by_target.tolist() == [[1.0, 2.0], [3.0, 4.0], [7.0, 8.0]]
    with pytest.raises(NoDatasetRows, match="do not tell"):
        dataset_rows(csv, 2, None, None)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(NoDatasetRows, match="header"):
        dataset_rows(tmp_path / "empty.csv", 2, None, None)
    (tmp_path / "words.csv").write_text("a,b\nx,y\n")
    with pytest.raises(NoDatasetRows, match="numbers"):
        dataset_rows(tmp_path / "words.csv", 2, None, None)


def test_dataset_rows_are_capped_by_a_fixed_sample(tmp_path: Path) -> None:
    csv = tmp_path / "big.csv"
    csv.write_text("a\n" + "\n".join(str(i) for i in range(5000)) + "\n")
    first, again = dataset_rows(csv, 1, None, None), dataset_rows(csv, 1, None, None)
    assert len(first) == 2000 and first.tolist() == again.tolist()
