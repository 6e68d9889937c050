"""Which scikit-learn estimators a training job may name, and how its params are checked.

A client names an estimator by its dotted class path. Only paths in ALLOWED are ever imported
(no `importlib` on client text), so `os.system` or `sklearn.utils._testing...` is refused before
anything loads. Each estimator here is a plain classifier or regressor that skops saves with
types inside scikit-learn, numpy and scipy, so the trained model loads under the same trusted-type
policy as an uploaded skops file.

Params are checked at submit time by constructing the estimator and running scikit-learn's own
parameter validation (the check `fit` would run first), so a typo or a bad value is a 422 now,
not a failed job later.
"""

from __future__ import annotations

import importlib
import math
from typing import Any

from app.errors import BadRequest, Unprocessable

CLASSIFIER, REGRESSOR = "classification", "regression"

ALLOWED: dict[str, str] = {
    "sklearn.linear_model.LogisticRegression": CLASSIFIER,
    "sklearn.linear_model.RidgeClassifier": CLASSIFIER,
    "sklearn.linear_model.SGDClassifier": CLASSIFIER,
    "sklearn.ensemble.RandomForestClassifier": CLASSIFIER,
    "sklearn.ensemble.ExtraTreesClassifier": CLASSIFIER,
    "sklearn.ensemble.GradientBoostingClassifier": CLASSIFIER,
    "sklearn.ensemble.HistGradientBoostingClassifier": CLASSIFIER,
    "sklearn.ensemble.AdaBoostClassifier": CLASSIFIER,
    "sklearn.tree.DecisionTreeClassifier": CLASSIFIER,
    "sklearn.neighbors.KNeighborsClassifier": CLASSIFIER,
    "sklearn.naive_bayes.GaussianNB": CLASSIFIER,
    "sklearn.svm.SVC": CLASSIFIER,
    "sklearn.svm.LinearSVC": CLASSIFIER,
    "sklearn.neural_network.MLPClassifier": CLASSIFIER,
    "sklearn.linear_model.LinearRegression": REGRESSOR,
    "sklearn.linear_model.Ridge": REGRESSOR,
    "sklearn.linear_model.Lasso": REGRESSOR,
    "sklearn.linear_model.ElasticNet": REGRESSOR,
    "sklearn.linear_model.SGDRegressor": REGRESSOR,
    "sklearn.ensemble.RandomForestRegressor": REGRESSOR,
    "sklearn.ensemble.ExtraTreesRegressor": REGRESSOR,
    "sklearn.ensemble.GradientBoostingRegressor": REGRESSOR,
    "sklearn.ensemble.HistGradientBoostingRegressor": REGRESSOR,
    "sklearn.ensemble.AdaBoostRegressor": REGRESSOR,
    "sklearn.tree.DecisionTreeRegressor": REGRESSOR,
    "sklearn.neighbors.KNeighborsRegressor": REGRESSOR,
    "sklearn.svm.SVR": REGRESSOR,
    "sklearn.svm.LinearSVR": REGRESSOR,
    "sklearn.neural_network.MLPRegressor": REGRESSOR,
}

# The parameter that `warm_start` grows, for estimators that can be fitted in chunks: each
# chunk adds trees (or boosting iterations) to the ones already fitted, so progress is real and
# a cancel takes effect between chunks.
CHUNKED_BY: dict[str, str] = {
    "sklearn.ensemble.RandomForestClassifier": "n_estimators",
    "sklearn.ensemble.ExtraTreesClassifier": "n_estimators",
    "sklearn.ensemble.GradientBoostingClassifier": "n_estimators",
    "sklearn.ensemble.HistGradientBoostingClassifier": "max_iter",
    "sklearn.ensemble.RandomForestRegressor": "n_estimators",
    "sklearn.ensemble.ExtraTreesRegressor": "n_estimators",
    "sklearn.ensemble.GradientBoostingRegressor": "n_estimators",
    "sklearn.ensemble.HistGradientBoostingRegressor": "max_iter",
}

# How many parts (zip members) a saved skops file has per fitted tree or boosting stage, and
# whether boosting fits one per class: measured on scikit-learn 1.9, rounded up. Uploads and
# inference refuse zips past ZipLimits.max_members (a bomb guard), so a model that would exceed
# it is refused at submit time instead of failing after a long fit.
PARTS_PER_UNIT: dict[str, tuple[int, bool]] = {
    "sklearn.ensemble.RandomForestClassifier": (5, False),
    "sklearn.ensemble.ExtraTreesClassifier": (5, False),
    "sklearn.ensemble.RandomForestRegressor": (5, False),
    "sklearn.ensemble.ExtraTreesRegressor": (5, False),
    "sklearn.ensemble.GradientBoostingClassifier": (4, True),
    "sklearn.ensemble.GradientBoostingRegressor": (4, False),
    "sklearn.ensemble.HistGradientBoostingClassifier": (4, True),
    "sklearn.ensemble.HistGradientBoostingRegressor": (4, False),
    "sklearn.ensemble.AdaBoostClassifier": (1, False),
    "sklearn.ensemble.AdaBoostRegressor": (1, False),
}
SPARE_PARTS = 50

PLAIN = (str, int, float, bool, type(None))


def task_of(path: str) -> str:
    """`classification` or `regression`; BadRequest for anything off the allow-list."""
    task = ALLOWED.get(path) if isinstance(path, str) else None
    if task is None:
        shown = repr(path)[:80]
        raise BadRequest(
            f"Estimator {shown} is not allowed. Name one of these scikit-learn classes: "
            f"{', '.join(sorted(ALLOWED))}.",
            code="estimator_not_allowed",
        )
    return task


def estimator_class(path: str) -> type:
    task_of(path)  # never import a path that is not on the list
    module, _, name = path.rpartition(".")
    cls: type = getattr(importlib.import_module(module), name)
    return cls


def _check_value(key: str, value: Any) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise Unprocessable(f"Param {key!r} must be a finite number.", code="invalid_params")
    if isinstance(value, list):
        for item in value:
            if not isinstance(item, PLAIN) or isinstance(item, list):
                raise Unprocessable(f"Param {key!r} may be a list of plain values only.",
                                    code="invalid_params")
    elif not isinstance(value, PLAIN):
        raise Unprocessable(f"Param {key!r} must be a string, number, boolean, null or list.",
                            code="invalid_params")


def build(path: str, params: dict[str, Any], random_state: int | None = None) -> Any:
    """A fresh, unfitted estimator with `params`; Unprocessable naming what is wrong.

    `random_state` fills the estimator's own `random_state` when it has one and the params
    leave it out, so one setting makes a job reproducible.
    """
    from sklearn.utils._param_validation import InvalidParameterError

    cls = estimator_class(path)
    short = path.rpartition(".")[2]
    for key, value in params.items():
        _check_value(key, value)
    known = cls().get_params(deep=False)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise Unprocessable(
            f"{short} has no param(s) {', '.join(map(repr, unknown))}. It takes: "
            f"{', '.join(sorted(known))}.",
            code="invalid_params",
        )
    if params.get("n_jobs") not in (None, 1):
        raise Unprocessable(
            "Param 'n_jobs' must be 1 or null: the pool runs each job in one process and "
            "bounds parallelism with the pool_size setting.",
            code="invalid_params",
        )
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
    if random_state is not None and "random_state" in known and "random_state" not in params:
        values["random_state"] = random_state
    try:
        estimator = cls(**values)
        # What `fit` runs first; running it now turns a bad value into a 422 at submit time.
        estimator._validate_params()
    except (InvalidParameterError, TypeError, ValueError) as exc:
        raise Unprocessable(f"Invalid params for {short}: {exc}", code="invalid_params") from exc
    return estimator


def check_storable(path: str, estimator: Any, n_classes: int | None) -> None:
    """Refuse an ensemble too big to be stored as skops (Unprocessable naming the bound)."""
    from app.formats.zip_safety import ZipLimits

    if path not in PARTS_PER_UNIT:
        return
    per_unit, per_class = PARTS_PER_UNIT[path]
    param = CHUNKED_BY.get(path, "n_estimators")
    units = int(estimator.get_params()[param])
    factor = n_classes if per_class and n_classes and n_classes > 2 else 1
    limit = ZipLimits().max_members
    if units * per_unit * factor + SPARE_PARTS > limit:
        most = (limit - SPARE_PARTS) // (per_unit * factor)
        raise Unprocessable(
            f"With {param}={units}, the trained {path.rpartition('.')[2]} would be larger than "
            f"ModelDepot stores and serves (a skops file of at most {limit} parts). Use "
            f"{param} of at most {most}.",
            code="invalid_params",
        )


def plain_params(estimator: Any) -> dict[str, Any]:
    """The estimator's own params as JSON values, to store beside the trained version."""
    params = {}
    for key, value in estimator.get_params(deep=False).items():
        if isinstance(value, tuple):
            value = list(value)
        if isinstance(value, PLAIN) or (
            isinstance(value, list) and all(isinstance(v, PLAIN) for v in value)
        ):
            params[key] = value
        else:
            params[key] = repr(value)[:200]
    return params
