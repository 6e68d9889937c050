"""The rows a twin is checked on: the training data when the registry has it, else made-up rows.

Made-up rows come from two places. The signature gives only the feature count, so rows are drawn
at several scales (a model fitted on values near 1 and one fitted on values near 10 000 both see
some of their range). A tree model also gives its own split thresholds: rows built from each
threshold and the float32 values on either side of it land exactly where a twin that rounds
differently would take the other branch, so those rows are the hardest test a twin can get.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

MAX_DATASET_ROWS = 2000
RANDOM_ROWS = 512
THRESHOLD_ROWS = 512
_SCALES = (1.0, 10.0, 1000.0, 0.01)


class NoDatasetRows(Exception):
    """The dataset cannot give feature rows; the message says why (kept in the report)."""


def dataset_rows(path: Path, n_features: int, feature_names: tuple[str, ...] | None,
                 target: str | None, seed: int = 0) -> np.ndarray:
    """Up to MAX_DATASET_ROWS rows of the model's features, in the model's order, from a CSV."""
    import numpy as np

    with path.open(newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header:
            raise NoDatasetRows("the dataset has no header row")
        columns = _feature_columns([h.strip() for h in header], n_features, feature_names,
                                   target)
        rows: list[list[float]] = []
        for line in reader:
            try:
                rows.append([float(line[i]) for i in columns])
            except (ValueError, IndexError):
                continue  # a blank or non-numeric cell: that row cannot be fed as it is
    if not rows:
        raise NoDatasetRows("no dataset row has numbers in every feature column")
    X = np.asarray(rows, dtype=np.float64)
    X = X[np.isfinite(X).all(axis=1)]
    if len(X) > MAX_DATASET_ROWS:
        pick = np.random.default_rng(seed).choice(len(X), MAX_DATASET_ROWS, replace=False)
        X = X[np.sort(pick)]
    if not len(X):
        raise NoDatasetRows("no dataset row has finite values in every feature column")
    return X


def _feature_columns(header: list[str], n_features: int, names: tuple[str, ...] | None,
                     target: str | None) -> list[int]:
    if names and all(n in header for n in names):
        return [header.index(n) for n in names]
    if target in header and len(header) - 1 == n_features:
        return [i for i, h in enumerate(header) if h != target]
    if len(header) == n_features:
        return list(range(n_features))
    raise NoDatasetRows(f"the dataset's {len(header)} columns do not tell which are the model's "
                        f"{n_features} features")


def random_rows(n_features: int, seed: int = 0) -> np.ndarray:
    """Rows at several scales, plus zeros and small whole numbers (counts, flags, categories)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    per_scale = RANDOM_ROWS // (len(_SCALES) + 1)
    parts = [rng.normal(0.0, scale, size=(per_scale, n_features)) for scale in _SCALES]
    parts.append(rng.integers(0, 5, size=(per_scale, n_features)).astype(np.float64))
    parts.append(np.zeros((1, n_features)))
    return np.vstack(parts)


def threshold_rows(estimator: Any, n_features: int, seed: int = 0) -> np.ndarray | None:
    """Rows whose every value sits on or next to one of the model's split thresholds."""
    import numpy as np

    by_feature: list[list[float]] = [[] for _ in range(n_features)]
    for tree in trees_of(estimator):
        inner = tree.children_left >= 0
        for feature, threshold in zip(tree.feature[inner], tree.threshold[inner], strict=True):
            if 0 <= feature < n_features:
                by_feature[int(feature)].append(float(threshold))
    if not any(by_feature):
        return None
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(THRESHOLD_ROWS, n_features))
    for feature, thresholds in enumerate(by_feature):
        if thresholds:
            values = _around(np.asarray(thresholds))
            X[:, feature] = rng.choice(values, THRESHOLD_ROWS)
    return X


def _around(thresholds: np.ndarray) -> np.ndarray:
    """Each threshold, its float32 rounding, and the float32 values just below and above it."""
    import numpy as np

    as32 = thresholds.astype(np.float32)
    below = np.nextafter(as32, np.float32(-np.inf))
    above = np.nextafter(as32, np.float32(np.inf))
    return np.unique(np.concatenate([thresholds, as32, below, above]).astype(np.float64))


def trees_of(estimator: Any) -> list[Any]:
    """The fitted `tree_` objects of a tree, a forest, a boosting ensemble or a pipeline's end."""
    import numpy as np

    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    if hasattr(final, "tree_"):
        return [final.tree_]
    members = getattr(final, "estimators_", None)
    if members is None:
        return []
    try:
        flat = np.asarray(members, dtype=object).reshape(-1)
    except (TypeError, ValueError):
        return []
    return [m.tree_ for m in flat if hasattr(m, "tree_")]
