"""The load cache: written by the compile job from the skops file, read by inference only after
its sha256 matches and only with the globals its recipe lists (docs/security.md)."""

from __future__ import annotations

import json
import logging
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from app.config import Settings
from app.formats.load_cache import CacheRecipe, dump_cache, load_cache
from app.formats.predictor import load_predictor
from app.inference.loaded import ModelUnavailable, load_version
from app.store import Store, VersionRecord
from app.store.load_caches import record_load_cache
from app.training.twin_build import compile_version
from tests.inference.conftest import add_version, flip_byte
from tests.live import free_port, start_registry, stop, wait_until
from tests.models import iris_model

X, Y = make_classification(300, 8, random_state=0)


def forest() -> RandomForestClassifier:
    return RandomForestClassifier(20, random_state=0).fit(X, Y)


def refuse_file(path: Path, fmt: str, **_: Any) -> Any:
    """A loader for the served file that fails: a load that succeeds came from the cache."""
    raise AssertionError("the served file was loaded")


def cached_version(store: Store, tmp: Path, model: Any, name: str = "m") -> VersionRecord:
    add_version(store, name, model, tmp)
    record = store.get_version(name, 1)
    summary = compile_version(store, record.id, twin=False)
    assert summary["load_cache"].startswith("Load cache written"), summary
    return store.get_version(name, 1)


@pytest.mark.parametrize("model", [
    forest(),
    HistGradientBoostingClassifier(max_iter=10, random_state=0).fit(X, Y),
    make_pipeline(StandardScaler(), iris_model()).fit(X, Y),
], ids=["forest", "hist-gradient-boosting", "pipeline"])
def test_the_compile_job_writes_a_cache_inference_loads_without_the_file(
        store: Store, tmp_path: Path, model: Any) -> None:
    record = cached_version(store, tmp_path, model)
    assert record.load_cache_sha256 and store.blobs.verify(record.load_cache_sha256)
    assert record.twin_status == "none"  # twin=False: the twin is left alone
    prepared = load_version(store, record, refuse_file)
    np.testing.assert_array_equal(prepared.predictor.predict(X), model.predict(X))
    np.testing.assert_array_equal(prepared.predictor.predict_proba(X), model.predict_proba(X))


def test_a_damaged_cache_is_passed_over_for_the_file(
        store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    record = cached_version(store, tmp_path, forest())
    assert record.load_cache_sha256
    flip_byte(store.blobs.path(record.load_cache_sha256), 200)
    with pytest.raises(ModelUnavailable, match="AssertionError"):
        load_version(store, record, refuse_file)
    with caplog.at_level(logging.ERROR):
        prepared = load_version(store, record, load_predictor)
    assert "does not match its sha256" in caplog.text
    assert prepared.predictor.predict(X[:3]).shape == (3,)


def test_a_cache_from_other_library_versions_is_not_read(store: Store, tmp_path: Path) -> None:
    record = cached_version(store, tmp_path, forest())
    assert record.load_cache_sha256 and record.load_cache_recipe
    recipe = dict(record.load_cache_recipe, environment={"scikit-learn": "0.1"})
    with store.db.write() as conn:
        conn.execute("UPDATE versions SET load_cache_recipe = ? WHERE id = ?",
                     (json.dumps(recipe), record.id))
    with pytest.raises(ModelUnavailable, match="AssertionError"):
        load_version(store, store.get_version("m", 1), refuse_file)


class _Hostile:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("listed", ["recipe", "stream-only"])
def test_a_forged_cache_never_runs_code(store: Store, tmp_path: Path, listed: str) -> None:
    """A cache blob and row forged together: the recipe lists a denied name, or the stream
    names one the recipe does not list. Neither is resolved; the file is served instead."""
    marker = tmp_path / "marker"
    model = forest()
    record = cached_version(store, tmp_path, model)
    assert record.load_cache_recipe
    data = pickle.dumps(_Hostile(marker))
    names = list(record.load_cache_recipe["globals"])
    if listed == "recipe":
        names.append(f"{os.system.__module__}.system")
    with pytest.raises(Exception, match="load cache"):
        load_cache(data, CacheRecipe(tuple(names), record.load_cache_recipe["environment"]))
    assert record_load_cache(store, record.id, data,
                             dict(record.load_cache_recipe, globals=names))
    prepared = load_version(store, store.get_version("m", 1), load_predictor)
    np.testing.assert_array_equal(prepared.predictor.predict(X), model.predict(X))
    assert not marker.exists()


def test_the_recipe_lists_exactly_what_the_stream_names() -> None:
    data, recipe = dump_cache(forest())
    assert "sklearn.tree._tree.Tree" in recipe.globals
    fewer = CacheRecipe(tuple(n for n in recipe.globals if n != "sklearn.tree._tree.Tree"),
                        recipe.environment)
    with pytest.raises(Exception, match="sklearn.tree._tree.Tree"):
        load_cache(data, fewer)


def test_a_replaced_or_deleted_cache_frees_its_blob(store: Store, tmp_path: Path) -> None:
    record = cached_version(store, tmp_path, forest())
    first = record.load_cache_sha256
    assert first and record.load_cache_recipe
    assert record_load_cache(store, record.id, b"other bytes", record.load_cache_recipe)
    assert not store.blobs.exists(first)
    second = store.get_version("m", 1).load_cache_sha256
    assert second and store.blobs.exists(second)
    store.delete_version("m", 1, force=True)
    assert not store.blobs.exists(second)


def test_a_starting_registry_writes_the_caches_missing(settings: Settings, store: Store,
                                                       tmp_path: Path) -> None:
    """Versions stored before the load cache existed (here: straight into the store) get one
    from the registry's pool once it starts."""
    add_version(store, "old", forest(), tmp_path)
    assert store.get_version("old", 1).load_cache_sha256 is None
    registry = start_registry(settings.home, free_port(), MODELDEPOT_TWINS="false")
    try:
        wait_until(lambda: store.get_version("old", 1).load_cache_sha256, 60,
                   "the load cache of a version stored earlier")
    finally:
        stop(registry)
    record = store.get_version("old", 1)
    assert record.load_cache_sha256 and store.blobs.verify(record.load_cache_sha256)
    assert load_version(store, record, refuse_file).predictor.predict(X[:2]).shape == (2,)
