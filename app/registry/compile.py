"""The `compile` job: build a version's ONNX twin, verify it, record the outcome.

`build_twin` runs in the job pool's spawned worker processes, so it is a top-level function of
plain arguments that opens the store itself. It never raises for a model it cannot compile:
converter gaps and mismatches are outcomes, recorded in the version's twin report, and the version
itself is never touched. It raises only when the store itself fails, as any job may.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from app.config import Paths
from app.errors import ModelDepotError, NotFound
from app.store import Store, VersionRecord
from app.store.blobs import file_sha256
from app.store.twins import NEEDS_NO_TWIN, record_twin, training_data, version_by_id

log = logging.getLogger(__name__)


def build_twin(data_dir: str, version_id: int) -> dict[str, Any]:
    """Build and verify the twin of version row `version_id`; returns a summary for the job."""
    store = Store(Paths(Path(data_dir)))
    try:
        try:
            record = version_by_id(store, version_id)
        except NotFound:
            return {"status": "none", "reason": "The version was deleted."}
        if record.format in NEEDS_NO_TWIN or record.status != "ready":
            return {"status": "none", "reason": f"A {record.status} {record.format} version "
                                                "needs no twin."}
        status, report, graph = _build(store, record)
        if not record_twin(store, version_id, status, report, graph):
            return {"status": "none", "reason": "The version was deleted."}
        log.info("twin of %s version %d: %s", record.model, record.version, status)
        return {"status": status, "reason": report.get("reason", "")}
    finally:
        store.close()


def _build(store: Store, record: VersionRecord) -> tuple[str, dict[str, Any], bytes | None]:
    from app.formats import load_predictor
    from app.formats.signature import Signature, signature_from_estimator
    from app.formats.twin_verify import UNSUPPORTED, build_and_verify

    path = store.blob_path(record)
    if file_sha256(path) != record.sha256:
        return UNSUPPORTED, {"reason": "The model file does not match its sha256."}, None
    declared = Signature.from_dict(record.signature) if record.signature else None
    try:
        predictor = load_predictor(path, record.format, signature=declared)
    except ModelDepotError as exc:
        return UNSUPPORTED, {"reason": f"The model could not be loaded: {exc.message}"}, None
    estimator = getattr(predictor, "estimator", None)
    if estimator is None:
        return UNSUPPORTED, {"reason": "Only scikit-learn models get a twin."}, None
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
