"""The test set of real fitted models whose every pickled or skops name must be allowed."""

from __future__ import annotations

import functools
import warnings
from typing import Any

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.cluster import KMeans
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    IsolationForest,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from sklearn.svm import SVC, SVR
from sklearn.tree import DecisionTreeClassifier


@functools.cache
def models() -> dict[str, Any]:
    X, y = load_iris(return_X_y=True)
    Xr, yr = X[:, 1:], X[:, 0]
    rng = np.random.RandomState(0)
    Xc = np.column_stack([X, rng.randint(0, 3, len(X))])  # a categorical fifth column
    X20 = rng.normal(size=(150, 20))
    X20[::7, 3] = np.nan
    y20 = np.arange(150) % 2
    fitted: dict[str, Any] = {
        "logreg": LogisticRegression(max_iter=300).fit(X, y),
        "linreg": LinearRegression().fit(Xr, yr),
        "ridge": Ridge().fit(Xr, yr),
        "forest-clf": RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y),
        "forest-reg": RandomForestRegressor(n_estimators=3, random_state=0).fit(Xr, yr),
        "extra-clf": ExtraTreesClassifier(n_estimators=3, random_state=0).fit(X, y),
        "extra-reg": ExtraTreesRegressor(n_estimators=3, random_state=0).fit(Xr, yr),
        "gb-clf": GradientBoostingClassifier(n_estimators=3).fit(X, y),
        "gb-reg": GradientBoostingRegressor(n_estimators=3).fit(Xr, yr),
        "hgb-clf": HistGradientBoostingClassifier(max_iter=3).fit(X, y),
        "hgb-reg": HistGradientBoostingRegressor(max_iter=3).fit(Xr, yr),
        "hgb-categorical": HistGradientBoostingClassifier(
            max_iter=3, categorical_features=[4]).fit(Xc, y),
        "tree": DecisionTreeClassifier(random_state=0).fit(X, y),
        "knn-kd": KNeighborsClassifier(algorithm="kd_tree").fit(X, y),
        "knn-ball": KNeighborsClassifier(algorithm="ball_tree").fit(X, y),
        "svr": SVR().fit(Xr, yr),
        "calibrated-svc": CalibratedClassifierCV(SVC(), cv=3).fit(X, y),
        "gaussian-nb": GaussianNB().fit(X, y),
        "kmeans": KMeans(n_clusters=3, n_init=1, random_state=0).fit(X),
        "isolation-forest": IsolationForest(n_estimators=3, random_state=0).fit(X),
        "pipeline-log1p": make_pipeline(
            SimpleImputer(), FunctionTransformer(np.log1p), StandardScaler(),
            LogisticRegression(max_iter=300)).fit(X, y),
        "column-transformer": make_pipeline(
            ColumnTransformer([("num", StandardScaler(), [0, 1, 2, 3]),
                               ("cat", OneHotEncoder(handle_unknown="ignore"), [4])],
                              remainder="passthrough"),
            LogisticRegression(max_iter=300)).fit(Xc, y),
        "pipeline-20-features": make_pipeline(
            SimpleImputer(strategy="median"), StandardScaler(),
            RandomForestClassifier(n_estimators=3, random_state=0)).fit(X20, y20),
    }
    with warnings.catch_warnings():
        # SVC(probability=True) is deprecated in scikit-learn 1.9, but files with it exist; the
        # MLP stops early on purpose (a few iterations suffice to hold fitted state).
        warnings.simplefilter("ignore")
        fitted["svc-probability"] = SVC(probability=True, random_state=0).fit(X, y)
        fitted["mlp"] = MLPClassifier(hidden_layer_sizes=(5,), max_iter=20,
                                      random_state=0).fit(X, y)
    return fitted
