"""The evaluation report of a fitted model on held-out rows: what the dashboard draws.

Classifiers get a confusion matrix (counts and row-normalised) and, for two classes, ROC and
precision-recall curves with their areas; regressors get predicted against actual and a residual
histogram; every model with `feature_importances_` or `coef_` gets its top features. The report is
plain JSON (lists, numbers, strings), stored with the version (`versions.evaluation`) and returned
by the API as `evaluation`.

Sizes are capped so a report stays a few tens of kilobytes whatever the split's size: curves are
thinned to `MAX_CURVE_POINTS`, the scatter keeps a deterministic sample of `MAX_SCATTER_POINTS`.
"""

from __future__ import annotations

from typing import Any

from app.training.estimators import CLASSIFIER

MAX_CURVE_POINTS = 200
MAX_SCATTER_POINTS = 400
MAX_CLASSES = 30  # a confusion matrix wider than this is not a picture any more
TOP_FEATURES = 15
HISTOGRAM_BINS = 20
DIGITS = 6


def evaluation_report(estimator: Any, task: str, X: Any, y: Any,
                      feature_names: list[str], source: str) -> dict[str, Any]:
    """The report for `estimator` on rows `X` with true values `y` (task: a training spec's
    "classification" or "regression"); `source` says where the rows came from, for the reader."""
    report: dict[str, Any] = {"task": task, "rows": int(len(y)), "source": source}
    if task == CLASSIFIER:
        report.update(_classifier(estimator, X, y))
    else:
        report.update(_regressor(estimator.predict(X), y))
    features = top_features(estimator, feature_names)
    if features:
        report["features"] = features
    return report


def _classifier(estimator: Any, X: Any, y: Any) -> dict[str, Any]:
    import numpy as np
    from sklearn import metrics

    predicted = estimator.predict(X)
    labels = list(getattr(estimator, "classes_", np.unique(np.concatenate([y, predicted]))))
    part: dict[str, Any] = {}
    if len(labels) <= MAX_CLASSES:
        counts = metrics.confusion_matrix(y, predicted, labels=labels)
        totals = counts.sum(axis=1, keepdims=True)
        normalised = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
        part["confusion"] = {"labels": [_plain(v) for v in labels],
                             "counts": counts.tolist(),
                             "normalized": _rounded(normalised)}
    if len(labels) == 2 and len(set(np.asarray(y).tolist())) == 2:
        scores = _positive_scores(estimator, X)
        if scores is not None:
            positive = labels[1]
            fpr, tpr, _ = metrics.roc_curve(y, scores, pos_label=positive)
            precision, recall, _ = metrics.precision_recall_curve(y, scores, pos_label=positive)
            part["roc"] = {"positive": _plain(positive), "auc": _round(metrics.auc(fpr, tpr)),
                           **_curve("fpr", fpr, "tpr", tpr)}
            part["pr"] = {"positive": _plain(positive),
                          "auc": _round(metrics.auc(recall, precision)),
                          **_curve("recall", recall, "precision", precision)}
    return part


def _positive_scores(estimator: Any, X: Any) -> Any:
    if hasattr(estimator, "predict_proba"):
        return estimator.predict_proba(X)[:, 1]
    if hasattr(estimator, "decision_function"):
        return estimator.decision_function(X)
    return None


def _regressor(predicted: Any, y: Any) -> dict[str, Any]:
    import numpy as np

    actual = np.asarray(y, dtype=float)
    predicted = np.asarray(predicted, dtype=float)
    residuals = actual - predicted
    counts, edges = np.histogram(residuals, bins=HISTOGRAM_BINS)
    keep = _sample(len(actual), MAX_SCATTER_POINTS)
    return {
        "scatter": {"actual": _rounded(actual[keep]), "predicted": _rounded(predicted[keep]),
                    "shown": len(keep)},
        "residuals": {"edges": _rounded(edges), "counts": counts.tolist()},
    }


def top_features(estimator: Any, names: list[str]) -> list[dict[str, Any]]:
    """Up to TOP_FEATURES (name, importance) pairs, largest magnitude first. Importances come from
    `feature_importances_` (trees) or `coef_` (linear models: for several classes, the mean
    magnitude across classes; for one row, the signed coefficient)."""
    import numpy as np

    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    if hasattr(final, "feature_importances_"):
        values, kind = np.asarray(final.feature_importances_, dtype=float), "feature_importances_"
    elif hasattr(final, "coef_"):
        coef = np.atleast_2d(np.asarray(final.coef_, dtype=float))
        values = coef[0] if coef.shape[0] == 1 else np.abs(coef).mean(axis=0)
        kind = "coef_"
    else:
        return []
    if values.ndim != 1 or len(values) != len(names):
        return []  # a pipeline that changes the columns: the names would lie
    order = np.argsort(-np.abs(values), kind="stable")[:TOP_FEATURES]
    return [{"name": names[i], "importance": _round(values[i]), "from": kind} for i in order]


def _curve(x_name: str, x: Any, y_name: str, y: Any) -> dict[str, Any]:
    keep = _sample(len(x), MAX_CURVE_POINTS)
    return {x_name: _rounded(x[keep]), y_name: _rounded(y[keep])}


def _sample(n: int, limit: int) -> Any:
    """Evenly spaced indices, first and last included: the same rows on every run."""
    import numpy as np

    if n <= limit:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(int))


def _round(value: Any) -> float:
    return round(float(value), DIGITS)


def _rounded(values: Any) -> list[Any]:
    import numpy as np

    return np.round(np.asarray(values, dtype=float), DIGITS).tolist()  # type: ignore[no-any-return]


def _plain(value: Any) -> Any:
    """A class label as JSON carries it (numpy scalars become Python ones)."""
    return value.item() if hasattr(value, "item") else value
