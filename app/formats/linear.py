"""Fitted linear models answered with numpy alone, by scikit-learn's own rules.

Why: scikit-learn's predict and predict_proba of a LogisticRegression cost about 0.3 ms each
(input validation, array-API dispatch) for a product of one row with one coefficient matrix;
under concurrent single-row load that fixed cost is most of a request (issue 18).

This is the same arithmetic scikit-learn runs, in the same order, so the answers are the same
bits, not close ones (tests/inference/test_linear_parity.py checks labels and probabilities
for many random models and inputs against the estimator itself):

- decision = X @ coef_.T + intercept_ (LinearClassifierMixin.decision_function, one column
  flattened; LinearModel._decision_function for regressors);
- labels: classes_[decision > 0] for one column, classes_[argmax] otherwise;
- LogisticRegression.predict_proba: two classes, expit(decision) stacked as [1 - p, p]; more,
  softmax (the row's max subtracted, exp, divided by the row's sum).

It covers only the exact classes below, for the scikit-learn releases whose source these rules
were read from (RULES_FROM); any other class, release, or input scikit-learn itself would refuse
or convert (not float, not finite, wrong width) goes to the estimator unchanged, so every check
and error message stays scikit-learn's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from app.formats.predictor import SklearnPredictor
from app.formats.signature import Signature

# scikit-learn releases whose linear_model/_base.py, _logistic.py and utils/extmath.py these
# rules were read from.
RULES_FROM = ("1.9.",)
CLASSIFIERS = frozenset({"sklearn.linear_model._logistic.LogisticRegression"})
_FLOATS = (np.dtype(np.float64), np.dtype(np.float32))
REGRESSORS = frozenset({"sklearn.linear_model._base.LinearRegression",
                        "sklearn.linear_model._ridge.Ridge"})


def _qualified(estimator: Any) -> str:
    cls = type(estimator)
    return f"{cls.__module__}.{cls.__qualname__}"


def linear_predictor(estimator: Any, signature: Signature | None) -> SklearnPredictor:
    """A LinearPredictor where the rules above are scikit-learn's, else a SklearnPredictor."""
    import sklearn

    name = _qualified(estimator)
    if sklearn.__version__.startswith(RULES_FROM) and (name in CLASSIFIERS or name in REGRESSORS):
        coef = getattr(estimator, "coef_", None)
        if isinstance(coef, np.ndarray) and coef.dtype.kind == "f" and coef.ndim in (1, 2) and \
                np.isfinite(coef).all() and (name in REGRESSORS or _binary_matches(estimator)):
            return LinearPredictor(estimator, signature, classifier=name in CLASSIFIERS)
    return SklearnPredictor(estimator, signature)


def _binary_matches(estimator: Any) -> bool:
    """predict_proba picks its rule by the number of classes, predict by the decision's
    columns: the fast path requires one column exactly when there are two classes."""
    coef, classes = estimator.coef_, getattr(estimator, "classes_", None)
    return isinstance(classes, np.ndarray) and coef.ndim == 2 and len(classes) >= 2 and \
        (coef.shape[0] == 1) == (len(classes) <= 2)


class LinearPredictor(SklearnPredictor):
    # One row's product takes microseconds, less than a thread handoff: the batcher runs
    # batches up to this many rows on the event loop.
    inline_rows = 64

    def __init__(self, estimator: Any, signature: Signature | None, *, classifier: bool) -> None:
        super().__init__(estimator, signature)
        from scipy.special import expit  # what sklearn.utils._array_api._expit calls for numpy

        self._expit = expit
        coef = estimator.coef_
        self._coef_T = coef.T if coef.ndim == 2 else coef
        self._width = coef.shape[-1]
        self._intercept = estimator.intercept_
        self._classifier = classifier
        self._classes = estimator.classes_ if classifier else None

    def _takes(self, X: np.ndarray) -> bool:
        """Inputs scikit-learn would pass through unchanged; anything else goes to it."""
        return isinstance(X, np.ndarray) and X.ndim == 2 and X.shape[1] == self._width and \
            X.shape[0] > 0 and X.dtype in _FLOATS and bool(np.isfinite(X).all())

    def _decision(self, X: np.ndarray) -> np.ndarray:
        scores: np.ndarray = X @ self._coef_T + self._intercept
        if self._classifier and scores.ndim > 1 and scores.shape[1] == 1:
            return scores.reshape(-1)
        return scores

    def _labels(self, scores: np.ndarray) -> np.ndarray:
        assert self._classes is not None
        indices = (scores > 0).astype(np.intp) if scores.ndim == 1 else scores.argmax(axis=1)
        labels: np.ndarray = self._classes.take(indices, axis=0)
        return labels

    def _proba(self, scores: np.ndarray) -> np.ndarray:
        if scores.ndim == 1:  # two classes: _predict_proba_lr
            p = self._expit(scores)
            return np.stack([1 - p, p], axis=1)
        X = scores.copy()  # softmax(decision, copy=False) in sklearn; scores are used again
        X -= X.max(axis=1).reshape((-1, 1))
        np.exp(X, out=X)
        X /= X.sum(axis=1).reshape((-1, 1))
        return X

    def predict(self, X: np.ndarray) -> np.ndarray:
        if not self._takes(X):
            return super().predict(X)
        scores = self._decision(X)
        return self._labels(scores) if self._classifier else scores

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        if not (self._classifier and self._takes(X)):
            return super().predict_proba(X)
        return np.asarray(self._proba(self._decision(X)), dtype=np.float64)

    def predict_with_proba(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Labels and probabilities from one decision (the batcher asks for both at once)."""
        if not (self._classifier and self._takes(X)):
            return self.predict(X), (self.predict_proba(X) if self.has_proba else None)
        scores = self._decision(X)
        return self._labels(scores), np.asarray(self._proba(scores), dtype=np.float64)
