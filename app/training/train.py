"""Training, as it runs in a pool worker: load, split, fit in chunks, evaluate, save.

`run(job_id, home)` is the worker function the pool calls: module level, plain arguments, so a
spawned process can import it by name (docs/architecture.md: everything that crosses a process
boundary is a top-level function taking plain data). Each step reports progress first, and a cancel
takes effect there. Estimators that grow with `warm_start` (forests, boosting) are fitted in chunks,
so fitting reports real progress and a cancel does not wait for the whole fit.

The trained model is saved as skops and goes through the upload path: `inspect_file` (the same
safety checks and signature as an uploaded file) and `Store.add_version` (pending row, durable
file, ready row).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from app.errors import UnsafeModel
from app.formats import Signature, inspect_file
from app.store import NewVersion, Store
from app.store.jobs import JobRecord
from app.training.estimators import CHUNKED_BY, CLASSIFIER, build, plain_params
from app.training.evaluation import evaluation_report
from app.training.tabular import load_columns, target_array
from app.training.worker import JobContext, Outcome, plain_metrics, run_job

FIT_CHUNKS = 10
# Progress at the start of each step; fitting fills the span between "fit" and "evaluate".
P_LOAD, P_SPLIT, P_FIT, P_EVALUATE, P_SAVE = 0.02, 0.10, 0.15, 0.85, 0.92


def run(job_id: str, home: str) -> None:
    """The pool's entry point for `kind: "train"` jobs."""
    run_job(job_id, home, train)


def train(store: Store, job: JobRecord, ctx: JobContext) -> Outcome:
    spec = job.spec
    features: list[str] = spec["features"]
    dataset = store.datasets.get(spec["dataset"])
    ctx.step("load", P_LOAD, f"Loading {dataset.row_count} rows of dataset {dataset.id[:12]} "
             f"({len(features)} features, target {spec['target']!r}).")

    def loaded(rows: int) -> None:
        ctx.step("load", P_LOAD + (P_SPLIT - P_LOAD) * rows / dataset.row_count)

    X, raw_y = load_columns(store.blobs.path(dataset.id), features, spec["target"],
                            dataset.row_count, loaded)
    target = dataset.column(spec["target"])
    assert target is not None  # checked at submit time
    y = target_array(raw_y, target, spec["task"])

    ctx.step("split", P_SPLIT, f"Holding out {spec['test_size']:.0%} of the rows for metrics.")
    X_train, X_test, y_train, y_test = split(X, y, spec)

    estimator = build(spec["estimator"], spec["params"], spec["random_state"])
    ctx.step("fit", P_FIT, f"Fitting {spec['estimator']} on {len(X_train)} rows.")
    with ctx.logged_warnings():
        for done, total in fit_in_chunks(estimator, spec["estimator"], X_train, y_train):
            ctx.step("fit", P_FIT + (P_EVALUATE - P_FIT) * done / total,
                     f"Fitted {done} of {total}." if total > 1 else None)

    ctx.step("evaluate", P_EVALUATE, f"Evaluating on {len(X_test)} held-out rows.")
    with ctx.logged_warnings():
        metrics = plain_metrics(evaluate(estimator, spec["task"], X_test, y_test))
        report = evaluation_report(estimator, spec["task"], X_test, y_test, features,
                                   f"{len(X_test)} held-out rows of dataset {dataset.id[:12]}")
    ctx.log("Metrics: " + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()))

    # The last point a cancel can stop the job: past it, a version exists.
    ctx.step("save", P_SAVE, f"Saving as skops to model {spec['model']!r}.")
    record = save(store, job, estimator, features, metrics, report)
    if spec.get("alias"):
        store.set_alias(record.model, spec["alias"], record.version)
        ctx.log(f"Alias {spec['alias']!r} now points at version {record.version}.")
    ctx.log(f"Stored {record.model} version {record.version} (sha256 {record.sha256}).")
    return Outcome(metrics=metrics, model=record.model, version=record.version)


def split(X: Any, y: Any, spec: dict[str, Any]) -> tuple[Any, Any, Any, Any]:
    """Hold-out split; stratified for classifiers when every class can appear on both sides."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    stratify = None
    if spec["task"] == CLASSIFIER:
        _, counts = np.unique(y, return_counts=True)
        n_test = math.ceil(spec["test_size"] * len(y))
        if counts.min() >= 2 and n_test >= len(counts) and len(y) - n_test >= len(counts):
            stratify = y
    parts: list[Any] = train_test_split(X, y, test_size=spec["test_size"],
                                        random_state=spec["random_state"], stratify=stratify)
    return parts[0], parts[1], parts[2], parts[3]


def fit_in_chunks(estimator: Any, path: str, X: Any, y: Any) -> Iterator[tuple[int, int]]:
    """Fit, yielding (done, total) after each chunk; one chunk for estimators that cannot grow."""
    param = CHUNKED_BY.get(path)
    if param is None:
        estimator.fit(X, y)
        yield 1, 1
        return
    total = int(estimator.get_params()[param])
    user_warm_start = estimator.get_params()["warm_start"]
    sizes = sorted({max(1, math.ceil(total * i / FIT_CHUNKS)) for i in range(1, FIT_CHUNKS + 1)})
    estimator.set_params(warm_start=True)
    for size in sizes:
        estimator.set_params(**{param: size})
        estimator.fit(X, y)
        yield size, total
    estimator.set_params(warm_start=user_warm_start)  # the saved params are the client's


def evaluate(estimator: Any, task: str, X: Any, y: Any) -> dict[str, float]:
    """Accuracy, F1 (binary: of the second class; else macro) and ROC AUC (binary) for
    classifiers; R2 and MAE for regressors."""
    from sklearn import metrics

    predicted = estimator.predict(X)
    if task != CLASSIFIER:
        return {"r2": metrics.r2_score(y, predicted),
                "mae": metrics.mean_absolute_error(y, predicted)}
    classes = list(estimator.classes_)
    result = {"accuracy": metrics.accuracy_score(y, predicted)}
    if len(classes) == 2:
        result["f1"] = metrics.f1_score(y, predicted, pos_label=classes[1])
        if len(set(y.tolist())) == 2:  # ROC AUC needs both classes in the held-out rows
            scores = (estimator.predict_proba(X)[:, 1] if hasattr(estimator, "predict_proba")
                      else estimator.decision_function(X))
            result["roc_auc"] = metrics.roc_auc_score(y, scores)
    else:
        result["f1"] = metrics.f1_score(y, predicted, average="macro")
    return result


def save(store: Store, job: JobRecord, estimator: Any, features: list[str],
         metrics: dict[str, float], report: dict[str, Any]) -> Any:
    """skops file in the blob temp dir -> the upload's checks -> a ready version."""
    import os

    import skops.io

    from app.store.blobs import file_sha256

    f, temp = store.blobs.temp_file()
    try:
        with f:
            skops.io.dump(estimator, f)
            f.flush()
            os.fsync(f.fileno())
        declared = Signature.from_dict({"feature_names": features})
        try:
            inspection = inspect_file(temp, trust=False, filename="model.skops",
                                      declared_signature=declared)
        except UnsafeModel as exc:  # too many parts: the same caps as an upload
            raise UnsafeModel(f"The trained model could not be stored: {exc.message} Train a "
                              "smaller model (fewer estimators).") from exc
        spec = job.spec
        return store.add_version(
            spec["model"], temp, file_sha256(temp), temp.stat().st_size,
            NewVersion(
                format=inspection.format,
                format_detail=inspection.format_detail,
                signature=inspection.signature.to_dict() if inspection.signature else None,
                metrics=metrics,
                params=plain_params(estimator),
                description=spec.get("description") or
                f"{spec['estimator'].rpartition('.')[2]} trained by job {job.id}.",
                source=f"job:{job.id}",
                environment=inspection.environment,
                warnings=inspection.warnings,
                dataset_id=spec["dataset"],
                evaluation=report,
            ),
        )
    finally:
        temp.unlink(missing_ok=True)
