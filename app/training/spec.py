"""The body of `POST /api/v1/jobs` with `kind: "train"`, checked completely before a row exists.

Everything a job needs is checked here against the stored dataset's column description: names,
the estimator (allow-list), its params (constructed), the columns (present, numeric, nothing
missing), the target (suits the estimator's task) and the split (both halves big enough). A job
that passes can still fail while fitting, but not because of what the client sent.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field

from app.errors import Unprocessable
from app.store import Store
from app.store.datasets import DatasetRecord
from app.store.names import check_alias, check_name
from app.training.estimators import CLASSIFIER, build, check_storable, task_of
from app.validation import Strict

MIN_SPLIT_ROWS = 2


class TrainRequest(Strict):
    kind: Literal["train"]
    model: str = Field(description="Model that receives the trained version (created if missing).")
    dataset: str = Field(description="Dataset id (the sha256 POST /datasets returned).")
    target: str = Field(description="Column to predict.")
    features: list[str] | None = Field(
        default=None, description="Feature columns, in order; default: every other column."
    )
    estimator: str = Field(description="Dotted scikit-learn class path from the allow-list.")
    params: dict[str, Any] = Field(default_factory=dict, description="Estimator params.")
    test_size: float = Field(default=0.25, gt=0, lt=1,
                             description="Share of rows held out to compute the metrics.")
    random_state: int | None = Field(default=None, ge=0, le=2**32 - 1)
    alias: str | None = Field(default=None, description="Alias to move to the new version.")
    description: str = Field(default="", max_length=10_000)


def check_columns(dataset: DatasetRecord, target: str, features: list[str] | None) -> list[str]:
    """The feature columns (default: all but the target), each present, numeric and complete;
    the target present. For training, and for evaluating a version on a dataset."""
    if dataset.column(target) is None:
        raise Unprocessable(
            f"The dataset has no column {target[:80]!r} to use as target. Its columns: "
            f"{', '.join(c.name for c in dataset.columns[:50])}.",
            code="invalid_columns",
        )
    if features is None:
        features = [c.name for c in dataset.columns if c.name != target]
    if not features:
        raise Unprocessable("Training needs at least one feature column besides the target.",
                            code="invalid_columns")
    if len(set(features)) != len(features):
        raise Unprocessable("features lists a column twice.", code="invalid_columns")
    if target in features:
        raise Unprocessable(f"The target {target!r} cannot also be a feature.",
                            code="invalid_columns")
    for name in features:
        column = dataset.column(name)
        if column is None:
            raise Unprocessable(f"The dataset has no column {name[:80]!r}.",
                                code="invalid_columns")
        if not column.numeric:
            raise Unprocessable(
                f"Feature {name!r} holds text, not numbers. Leave it out with 'features', or "
                "encode it as numbers before uploading.",
                code="invalid_columns",
            )
        if column.missing:
            raise Unprocessable(
                f"Feature {name!r} has {column.missing} missing value(s). Fill or drop them "
                "before uploading, or leave the column out with 'features'.",
                code="invalid_columns",
            )
    return features


def check_target(dataset: DatasetRecord, target: str, task: str) -> None:
    column = dataset.column(target)
    assert column is not None
    if column.missing:
        raise Unprocessable(f"The target {target!r} has {column.missing} missing value(s).",
                            code="invalid_columns")
    if task == CLASSIFIER:
        if column.distinct is None:
            raise Unprocessable(
                f"The target {target!r} has more than 1000 distinct values, which is a "
                "regression target; choose a regressor.",
                code="invalid_columns",
            )
        if column.distinct < 2:
            raise Unprocessable(
                f"The target {target!r} has a single value; a classifier needs two classes "
                "or more.",
                code="invalid_columns",
            )
    elif not column.numeric:
        raise Unprocessable(
            f"The target {target!r} holds text; a regressor predicts numbers. Choose a "
            "classifier, or another target.",
            code="invalid_columns",
        )


def _check_split(dataset: DatasetRecord, test_size: float) -> None:
    n_test = math.ceil(test_size * dataset.row_count)
    n_train = dataset.row_count - n_test
    if n_test < MIN_SPLIT_ROWS or n_train < MIN_SPLIT_ROWS:
        raise Unprocessable(
            f"With {dataset.row_count} rows, test_size {test_size} leaves {n_train} row(s) to fit "
            f"and {n_test} to evaluate; each needs at least {MIN_SPLIT_ROWS}.",
            code="invalid_split",
        )


def validate_train(store: Store, req: TrainRequest) -> tuple[dict[str, Any], str]:
    """(the job spec to store, the model name); raises the 4xx that names the problem."""
    check_name(req.model)
    if req.alias is not None:
        check_alias(req.alias)
    task = task_of(req.estimator)
    dataset = store.datasets.get(req.dataset)
    features = check_columns(dataset, req.target, req.features)
    check_target(dataset, req.target, task)
    _check_split(dataset, req.test_size)
    estimator = build(req.estimator, req.params, req.random_state)
    target = dataset.column(req.target)
    check_storable(req.estimator, estimator, target.distinct if target else None)
    spec = req.model_dump()
    spec["features"] = features
    spec["task"] = task
    return spec, req.model
