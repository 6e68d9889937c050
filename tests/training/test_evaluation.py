"""The evaluation report against scikit-learn's own functions on the same rows."""

from __future__ import annotations

import json

import numpy as np
from sklearn import metrics
from sklearn.datasets import load_diabetes, load_iris, make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from app.training.evaluation import (
    HISTOGRAM_BINS,
    MAX_CURVE_POINTS,
    MAX_SCATTER_POINTS,
    TOP_FEATURES,
    evaluation_report,
)

IRIS_NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def test_multiclass_confusion_matrix_and_features_match_sklearn() -> None:
    X, y = load_iris(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=1)
    model = LogisticRegression(max_iter=500).fit(X_train, y_train)
    report = evaluation_report(model, "classification", X_test, y_test, IRIS_NAMES, "held out")

    expected = metrics.confusion_matrix(y_test, model.predict(X_test), labels=model.classes_)
    assert report["confusion"]["labels"] == [0, 1, 2]
    assert report["confusion"]["counts"] == expected.tolist()
    normalised = np.array(report["confusion"]["normalized"])
    assert np.allclose(normalised, expected / expected.sum(axis=1, keepdims=True), atol=1e-6)
    assert "roc" not in report and "pr" not in report  # curves only for two classes
    assert report["rows"] == len(y_test) and report["task"] == "classification"

    mean_magnitude = np.abs(model.coef_).mean(axis=0)
    names = [f["name"] for f in report["features"]]
    assert names == [IRIS_NAMES[i] for i in np.argsort(-mean_magnitude)]
    assert {f["from"] for f in report["features"]} == {"coef_"}
    json.dumps(report)  # plain JSON, storable as is


def test_binary_curves_and_areas_match_sklearn() -> None:
    X, y = make_classification(n_samples=3000, n_features=30, random_state=0)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.5, random_state=0)
    model = RandomForestClassifier(n_estimators=30, random_state=0).fit(X_train, y_train)
    names = [f"x{i}" for i in range(30)]
    report = evaluation_report(model, "classification", X_test, y_test, names, "held out")

    scores = model.predict_proba(X_test)[:, 1]
    assert report["roc"]["auc"] == round(metrics.roc_auc_score(y_test, scores), 6)
    precision, recall, _ = metrics.precision_recall_curve(y_test, scores)
    assert report["pr"]["auc"] == round(metrics.auc(recall, precision), 6)
    assert len(report["roc"]["fpr"]) == len(report["roc"]["tpr"]) <= MAX_CURVE_POINTS
    assert report["roc"]["fpr"][0] == 0.0 and report["roc"]["tpr"][-1] == 1.0
    assert len(report["features"]) == TOP_FEATURES
    top = int(np.argmax(model.feature_importances_))
    assert report["features"][0]["name"] == f"x{top}"


def test_a_model_without_scores_or_importances_gets_the_matrix_only() -> None:
    X, y = make_classification(n_samples=200, n_features=4, n_informative=2, random_state=0)
    model = make_pipeline(StandardScaler(), KNeighborsClassifier()).fit(X, y)
    report = evaluation_report(model, "classification", X, y, ["a", "b", "c", "d"], "training rows")
    assert "features" not in report and "confusion" in report
    assert "roc" in report  # k-NN gives probabilities


def test_regressor_scatter_and_residual_histogram() -> None:
    X, y = load_diabetes(return_X_y=True)
    model = LinearRegression().fit(X, y)
    names = [f"x{i}" for i in range(X.shape[1])]
    report = evaluation_report(model, "regression", X, y, names, "all rows")

    residuals = y - model.predict(X)
    counts, edges = np.histogram(residuals, bins=HISTOGRAM_BINS)
    assert report["residuals"]["counts"] == counts.tolist()
    assert np.allclose(report["residuals"]["edges"], edges, atol=1e-5)
    scatter = report["scatter"]
    assert scatter["shown"] == len(scatter["actual"]) == MAX_SCATTER_POINTS < len(y)
    assert scatter["actual"][0] == round(float(y[0]), 6)
    assert scatter["predicted"][-1] == round(float(model.predict(X[-1:])[0]), 6)
    assert report["features"][0]["importance"] == round(
        float(model.coef_[np.argmax(np.abs(model.coef_))]), 6)
