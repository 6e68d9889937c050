"""Small real datasets as CSV bytes, and job bodies, for the dataset, job and fault tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

RF = "sklearn.ensemble.RandomForestClassifier"
FINAL = ("succeeded", "failed", "cancelled")
SLOW_ROWS = 2000


def classification_csv(rows: int = 300, features: int = 4, seed: int = 0,
                       labels: tuple[str, ...] = ("0", "1")) -> bytes:
    """Numeric features f0..fN, a `label` column the features really predict."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, features))
    score = X[:, 0] + 0.5 * X[:, 1]
    bins = np.quantile(score, np.linspace(0, 1, len(labels) + 1)[1:-1])
    y = np.digitize(score, bins)
    header = ",".join([f"f{i}" for i in range(features)] + ["label"])
    lines = [",".join(f"{v:.5f}" for v in row) + f",{labels[k]}"
             for row, k in zip(X, y, strict=True)]
    return ("\n".join([header, *lines]) + "\n").encode()


def regression_csv(rows: int = 200, seed: int = 1) -> bytes:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, 3))
    y = 3 * X[:, 0] - X[:, 2] + 0.1 * rng.standard_normal(rows)
    lines = [f"{a:.5f},{b:.5f},{c:.5f},{t:.5f}" for (a, b, c), t in zip(X, y, strict=True)]
    return ("\n".join(["x0,x1,x2,price", *lines]) + "\n").encode()


def train_body(dataset: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": "train", "model": "churn", "dataset": dataset,
                            "target": "label", "estimator": RF,
                            "params": {"n_estimators": 20}, "random_state": 0}
    body.update(overrides)
    return body


def slow_body(dataset: str, model: str = "slow", trees: int = 1500) -> dict[str, Any]:
    """A forest fitted in ten chunks of about a second each (on SLOW_ROWS rows): cancel and
    kill land mid-fit."""
    return train_body(dataset, model=model, params={"n_estimators": trees, "max_depth": 12})


def wait_until(probe: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """Poll `probe` until it returns something truthy; fail naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = probe()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
