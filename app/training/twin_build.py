"""The `compile` job: build a version's ONNX twin, verify it, record the outcome.

`run(job_id, home)` is the worker function the pool calls (jobkinds.py); `build_twin(data_dir,
version_id)` is the same work without a job row, for benchmarks and tests. Both open the store in
their own process. Neither raises for a model it cannot compile: converter gaps and mismatches are
outcomes, recorded in the version's twin report, and the version itself is never touched. The job
succeeds whenever an outcome was recorded; its log says which, and the version's `twin` shows it.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

from app.config import Paths
from app.errors import ModelDepotError, NotFound
from app.store import Store, VersionRecord
from app.store.blobs import file_sha256
from app.store.jobs import JobRecord
from app.store.twins import NEEDS_NO_TWIN, record_twin, training_data, version_by_id
from app.training.load_cache_build import write_load_cache
from app.training.worker import Cancelled, JobContext, Outcome, run_job

log = logging.getLogger(__name__)
P_BUILD = 0.05


def run(job_id: str, home: str) -> None:
    """The pool's entry point for `kind: "compile"` jobs (spec: version_id, model, version, and
    twin: False when only the load cache is wanted, because the setting twins is off)."""
    run_job(job_id, home, compile_job)


def compile_job(store: Store, job: JobRecord, ctx: JobContext) -> Outcome:
    spec = job.spec
    version_id = int(spec["version_id"])
    twin = bool(spec.get("twin", True))
    try:
        ctx.step("build", P_BUILD, f"Converting {spec['model']} version {spec['version']} with "
                 "skl2onnx and checking the twin against the model on sample rows.")
        summary = compile_version(store, version_id, twin=twin)
    except BaseException as exc:
        if not twin:
            raise
        # Never leave the version's twin `queued` for a job that is over.
        reason = "The compile job was cancelled." if isinstance(exc, Cancelled) else \
            "The compile job stopped before it finished; its log has the details."
        with contextlib.suppress(Exception):
            record_twin(store, version_id, "none" if isinstance(exc, Cancelled) else "failed",
                        {"reason": reason})
        raise
    # A log line, not a step: past this point a cancel would only mislabel a recorded outcome.
    if summary.get("load_cache"):
        ctx.log(summary["load_cache"])
    ctx.log(f"Twin {summary['status']}" + (f": {summary['reason']}" if summary["reason"] else "."))
    return Outcome(metrics={"twin_verified": float(summary["status"] == "verified")},
                   model=spec["model"], version=int(spec["version"]))


def build_twin(data_dir: str, version_id: int) -> dict[str, Any]:
    """Build and verify the twin of version row `version_id`; returns a summary for the job."""
    store = Store(Paths(Path(data_dir)))
    try:
        summary = compile_version(store, version_id)
        summary.pop("load_cache", None)  # the twin's outcome only, as before the load cache
        return summary
    finally:
        store.close()


def compile_version(store: Store, version_id: int, *, twin: bool = True) -> dict[str, Any]:
    """Write the load cache, then (with `twin`) build, verify and record the twin;
    {"status", "reason", "load_cache"} of what was recorded."""
    try:
        record = version_by_id(store, version_id)
    except NotFound:
        return {"status": "none", "reason": "The version was deleted."}
    if record.format in NEEDS_NO_TWIN or record.status != "ready":
        return {"status": "none", "reason": f"A {record.status} {record.format} version "
                                            "needs no twin."}
    loaded = _load(store, record)
    cache_line = write_load_cache(store, record, loaded[0]) if loaded[0] is not None else ""
    if not twin:
        return {"status": "none", "reason": "Twins are off.", "load_cache": cache_line}
    status, report, graph = _build(store, record, *loaded)
    if not record_twin(store, version_id, status, report, graph):
        return {"status": "none", "reason": "The version was deleted.", "load_cache": cache_line}
    log.info("twin of %s version %d: %s", record.model, record.version, status)
    return {"status": status, "reason": report.get("reason", ""), "load_cache": cache_line}


def _load(store: Store, record: VersionRecord) -> tuple[Any, str]:
    """(the estimator loaded from the served file as a server loads it, or None; why not)."""
    from app.formats import load_predictor
    from app.formats.signature import Signature

    path, digest, fmt = store.served_path(record)
    if file_sha256(path) != digest:
        return None, "The model file does not match its sha256."
    declared = Signature.from_dict(record.signature) if record.signature else None
    try:
        predictor = load_predictor(path, fmt, signature=declared)
    except ModelDepotError as exc:
        return None, f"The model could not be loaded: {exc.message}"
    estimator = getattr(predictor, "estimator", None)
    if estimator is None:
        return None, "Only scikit-learn models get a twin."
    return estimator, ""


def _build(store: Store, record: VersionRecord, estimator: Any, why_not: str
           ) -> tuple[str, dict[str, Any], bytes | None]:
    from app.formats.signature import Signature, signature_from_estimator
    from app.formats.twin_verify import UNSUPPORTED, build_and_verify

    if estimator is None:
        return UNSUPPORTED, {"reason": why_not}, None
    declared = Signature.from_dict(record.signature) if record.signature else None
    signature = declared or signature_from_estimator(estimator)
    rows, sample = _sample(store, record, estimator, signature)
    outcome = build_and_verify(estimator, signature, rows, sample)
    return outcome.status, outcome.report, outcome.onnx_bytes


def _sample(store: Store, record: VersionRecord, estimator: Any,
            signature: Any) -> tuple[Any, dict[str, Any]]:
    """Training rows when the registry has them, else rows drawn at several scales; plus rows
    on the model's own split thresholds when it has any."""
    import numpy as np

    from app.formats.twin_samples import (
        NoDatasetRows,
        dataset_rows,
        random_rows,
        threshold_rows,
    )

    n_features = signature.n_features or 1
    sample: dict[str, Any] = {}
    rows = None
    data = training_data(store, record.id)
    if data is not None:
        try:
            rows = dataset_rows(data.path, n_features, signature.feature_names, data.target)
            sample.update(rows_from="dataset", dataset_id=data.dataset_id,
                          dataset_rows=int(len(rows)))
        except (NoDatasetRows, OSError) as exc:
            sample["dataset_unused"] = str(exc)
    if rows is None:
        rows = random_rows(n_features)
        sample.update(rows_from="signature", random_rows=int(len(rows)))
    edges = threshold_rows(estimator, n_features)
    if edges is not None:
        rows = np.vstack([rows, edges])
        sample["threshold_rows"] = int(len(edges))
    return rows, sample
