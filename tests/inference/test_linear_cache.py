"""A linear model with its linear load cache is served from its arrays by numpy alone: a real
inference process answers as scikit-learn does (and says so: engine "scikit-learn"), in
preference to the version's verified ONNX twin, and never maps scikit-learn, SciPy or
onnxruntime into memory (what keeps a small box's idle memory low)."""

from __future__ import annotations

import json
import pickle
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from app.config import Settings
from app.formats.environment import runtime_environment
from app.store import Store
from app.store.load_caches import record_load_cache
from app.training.twin_build import build_twin
from tests.inference.conftest import add_version
from tests.live import free_port, start_inference, start_registry, stop, wait_until

HEAVY = ("/sklearn/", "/scipy/", "/scipy.libs/", "/onnxruntime/")


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def predict(url: str, rows: list[list[float]]) -> Any:
    body = json.dumps({"instances": rows, "proba": True}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as r:
        return json.loads(r.read())


def mapped_files(pid: int) -> set[str]:
    with open(f"/proc/{pid}/maps") as maps:
        return {line.split(None, 5)[5].strip() for line in maps if len(line.split(None, 5)) > 5}


def test_served_from_its_arrays_by_numpy_alone(settings: Settings, store: Store,
                                               tmp_path: Path) -> None:
    data = load_iris()
    model = LogisticRegression(max_iter=300).fit(data.data, data.target_names[data.target])
    version = add_version(store, "iris", model, tmp_path, alias="production")
    record = store.get_version("iris", version)
    # The registry's own compile job: it writes the load cache, then builds and verifies a twin.
    built = build_twin(str(settings.home), record.id)
    assert built["status"] == "verified", built
    record = store.get_version("iris", version)
    assert record.load_cache_recipe is not None and record.load_cache_recipe["form"] == "linear"

    port = free_port()
    proc = start_inference(settings.home, port)
    try:
        url = f"http://127.0.0.1:{port}"
        rows = np.vstack([data.data, np.random.default_rng(0).normal(4, 3, (200, 4))]).round(4)
        answer = predict(f"{url}/v1/models/iris/predict", rows.tolist())
        assert answer["predictions"] == model.predict(rows).tolist()
        assert np.array_equal(np.array(answer["probabilities"]), model.predict_proba(rows))
        assert get(f"{url}/v1/models/iris")["engine"] == "scikit-learn"
        heavy = sorted(f for f in mapped_files(proc.pid) if any(h in f for h in HEAVY))
        assert heavy == [], heavy
    finally:
        stop(proc)


def test_a_pickled_cache_of_the_earlier_generation_becomes_arrays_at_registry_start(
        settings: Settings, store: Store, tmp_path: Path) -> None:
    """A box upgraded from the release whose caches were all pickles: its linear versions get
    their arrays from the registry's pool once it starts (the cache generation moved)."""
    data = load_iris()
    model = LogisticRegression(max_iter=300).fit(data.data, data.target)
    add_version(store, "old", model, tmp_path)
    record = store.get_version("old", 1)
    earlier = {"globals": ["sklearn.linear_model._logistic.LogisticRegression"],
               "environment": runtime_environment()}  # no "form", no "load_cache" generation
    assert record_load_cache(store, record.id, pickle.dumps(model, protocol=5), earlier)
    registry = start_registry(settings.home, free_port(), MODELDEPOT_TWINS="false")
    try:
        wait_until(lambda: (store.get_version("old", 1).load_cache_recipe or {}).get("form")
                   == "linear", 60, "the arrays of a version cached by the earlier release")
    finally:
        stop(registry)


def test_a_model_taking_whole_numbers_keeps_scikit_learns_own_conversion(
        store: Store, tmp_path: Path) -> None:
    """Requests to a model whose signature takes int64 arrive as int64 (app/inference/inputs.py);
    from the arrays alone they would be refused, so such a version keeps a pickled load cache and
    scikit-learn's own conversion."""
    from app.formats.signature import signature_from_estimator
    from app.inference.loaded import load_version
    from app.training.twin_build import compile_version

    data = load_iris()
    X = (data.data * 10).astype(np.int64)
    model = LogisticRegression(max_iter=1000).fit(X, data.target)
    signature = dict(signature_from_estimator(model).to_dict(), input_dtype="int64")
    add_version(store, "counts", model, tmp_path, signature=signature)
    record = store.get_version("counts", 1)
    compile_version(store, record.id, twin=False)
    record = store.get_version("counts", 1)
    assert record.load_cache_recipe is not None and record.load_cache_recipe["form"] == "pickle"

    def refuse_file(*_: Any, **__: Any) -> Any:
        raise AssertionError("the served file was loaded, not the cache")

    prepared = load_version(store, record, refuse_file)
    assert getattr(prepared.predictor, "estimator", None) is not None  # scikit-learn's path
    assert np.array_equal(prepared.predictor.predict(X), model.predict(X))
    assert np.array_equal(prepared.predictor.predict_proba(X), model.predict_proba(X))


def test_a_forged_linear_cache_is_passed_over_for_the_file(store: Store, tmp_path: Path) -> None:
    """Bytes and row forged together (the sha256 matches): whatever the bytes, the version is
    loaded from its own file, as for any cache that does not read."""
    from app.formats.predictor import load_predictor
    from app.inference.loaded import load_version
    from app.training.twin_build import compile_version
    from tests.inference.test_linear_parity import encrypted_flag, patched

    data = load_iris()
    model = LogisticRegression(max_iter=300).fit(data.data, data.target)
    add_version(store, "m", model, tmp_path)
    compile_version(store, store.get_version("m", 1).id, twin=False)
    recipe = store.get_version("m", 1).load_cache_recipe
    assert recipe is not None and recipe["form"] == "linear"
    good = store.blobs.path(store.get_version("m", 1).load_cache_sha256 or "").read_bytes()
    for forged in (encrypted_flag(), b"PK\x05\x06" + bytes(18), good[:-40],
                   patched(good, b"'descr': '<f8'", b"'descr': ()   ")):
        assert record_load_cache(store, store.get_version("m", 1).id, forged, recipe)
        prepared = load_version(store, store.get_version("m", 1), load_predictor)
        assert getattr(prepared.predictor, "estimator", None) is not None  # from the file
        assert np.array_equal(prepared.predictor.predict_proba(data.data),
                              model.predict_proba(data.data))
