"""The "evaluate" job: an evaluation report for a stored version on a stored dataset.

For uploaded versions, which have no held-out split of their own. The version's served file is
opened with `load_predictor`, exactly as the inference server opens it (never the pickle a client
sent: that was opened once, in the sandbox). Every row of the dataset is evaluated; the report is
stored with the version (`Store.set_evaluation`) and the job's metrics are the headline numbers.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from app.errors import Unprocessable
from app.store import Store
from app.store.jobs import JobRecord
from app.store.names import check_name
from app.training.estimators import CLASSIFIER, REGRESSOR
from app.training.evaluation import evaluation_report
from app.training.spec import check_columns, check_target
from app.training.tabular import load_columns, target_array
from app.training.worker import JobContext, Outcome, plain_metrics, run_job
from app.validation import Strict

P_LOAD, P_PREDICT, P_SAVE = 0.05, 0.5, 0.95


class EvaluateRequest(Strict):
    kind: Literal["evaluate"]
    model: str = Field(description="Model whose version is evaluated.")
    version: int = Field(ge=1, description="Version number.")
    dataset: str = Field(description="Dataset id whose rows it is evaluated on.")
    target: str = Field(description="Column holding the true values.")


def validate_evaluate(store: Store, req: EvaluateRequest) -> tuple[dict[str, Any], str]:
    """(the job spec, the model name); 4xx naming what does not fit: the version must be ready
    and name its features, and the dataset must hold them (numeric, complete) and the target."""
    check_name(req.model)
    record = store.get_version(req.model, req.version)
    if record.status != "ready":
        raise Unprocessable(f"Version {req.version} of {req.model!r} is {record.status}; only a "
                            "ready version can be evaluated.", code="version_not_ready")
    signature = record.signature or {}
    names = signature.get("feature_names")
    if not names:
        raise Unprocessable(
            f"Version {req.version} of {req.model!r} does not name its features, so the "
            "dataset's columns cannot be matched to its inputs. Upload it with a signature "
            "naming them.", code="invalid_columns")
    dataset = store.datasets.get(req.dataset)
    features = check_columns(dataset, req.target, list(names))
    task = CLASSIFIER if signature.get("classes") else REGRESSOR
    check_target(dataset, req.target, task)
    spec = req.model_dump()
    # version_id: retention keeps a version a queued or running job reads (store/retention.py).
    spec.update(features=features, task=task, version_id=record.id)
    return spec, req.model


def run(job_id: str, home: str) -> None:
    """The pool's entry point for `kind: "evaluate"` jobs."""
    run_job(job_id, home, evaluate)


def evaluate(store: Store, job: JobRecord, ctx: JobContext) -> Outcome:
    from app.formats import load_predictor
    from app.formats.signature import Signature

    spec = job.spec
    record = store.get_version(spec["model"], spec["version"])
    dataset = store.datasets.get(spec["dataset"])
    ctx.step("load", P_LOAD, f"Loading version {record.version} and {dataset.row_count} rows "
             f"of dataset {dataset.id[:12]}.")
    digest, file_format = record.served_file
    assert digest is not None  # a ready version has its file
    predictor = load_predictor(store.blobs.path(digest), file_format,
                               signature=Signature.from_dict(record.signature or {}))
    X, raw_y = load_columns(store.blobs.path(dataset.id), spec["features"], spec["target"],
                            dataset.row_count, lambda rows: None)
    target = dataset.column(spec["target"])
    assert target is not None  # checked at submit time
    y = target_array(raw_y, target, spec["task"])

    ctx.step("predict", P_PREDICT, f"Predicting {len(X)} rows.")
    model = getattr(predictor, "estimator", None) or AsEstimator(predictor)
    with ctx.logged_warnings():
        report = evaluation_report(model, spec["task"], X, y, spec["features"],
                                   f"all {len(X)} rows of dataset {dataset.name or dataset.id[:12]}"
                                   f" (target {spec['target']!r})")
    ctx.step("save", P_SAVE, "Storing the report with the version.")
    store.set_evaluation(record.model, record.version, report)
    metrics = plain_metrics(headline(report, model, X, y))
    ctx.log("Metrics: " + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
    return Outcome(metrics=metrics, model=record.model, version=record.version)


class AsEstimator:
    """An ONNX predictor seen as the estimator the report reads (predict, predict_proba,
    classes_ from the signature)."""

    def __init__(self, predictor: Any) -> None:
        import numpy as np

        self._predictor = predictor
        classes = (predictor.signature.classes if predictor.signature else None) or []
        if classes:
            self.classes_ = np.asarray(classes)
        if predictor.has_proba:
            self.predict_proba = predictor.predict_proba

    def predict(self, X: Any) -> Any:
        return self._predictor.predict(X)


def headline(report: dict[str, Any], model: Any, X: Any, y: Any) -> dict[str, float]:
    """The job's metrics: accuracy (and ROC AUC) for classifiers, R2 and MAE for regressors."""
    from sklearn import metrics

    predicted = model.predict(X)
    if report["task"] == CLASSIFIER:
        result = {"accuracy": metrics.accuracy_score(y, predicted)}
        if "roc" in report:
            result["roc_auc"] = report["roc"]["auc"]
        return result
    return {"r2": metrics.r2_score(y, predicted), "mae": metrics.mean_absolute_error(y, predicted)}
