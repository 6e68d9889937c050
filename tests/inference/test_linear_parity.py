"""The numpy path for fitted linear models (app/formats/linear.py) gives scikit-learn's own
answers bit for bit: labels, probabilities and regression values, over many random models and
inputs, in one call or split into batches, and leaves every refusal to scikit-learn. The same
holds when it answers from the arrays alone (the linear load cache, an .npz), whose reader
refuses anything but a consistent linear model."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge

from app.errors import InvalidModelFile, Unprocessable
from app.formats import load_predictor
from app.formats.linear import (
    LinearPredictor,
    dump_linear,
    linear_model_of,
    linear_predictor,
    load_linear,
)
from app.formats.predictor import SklearnPredictor
from app.formats.signature import signature_from_estimator
from tests.models import write_skops


def classification(rng: np.random.Generator, n_classes: int, n_features: int,
                   strings: bool) -> tuple[np.ndarray, np.ndarray]:
    X = rng.normal(scale=rng.uniform(0.1, 50), size=(60 * n_classes, n_features))
    y = np.arange(len(X)) % n_classes  # every class present
    X[:, 0] += y * rng.uniform(0.5, 3)  # some signal, so coefficients are not all tiny
    labels = np.array([f"c{v}" for v in y]) if strings else y * 3 - 2
    return X, labels


def inputs(rng: np.random.Generator, n_features: int) -> list[np.ndarray]:
    wide = rng.normal(scale=1e3, size=(37, n_features))
    return [rng.normal(size=(1, n_features)), rng.normal(scale=20, size=(200, n_features)),
            wide, wide.astype(np.float32), np.zeros((3, n_features)),
            np.asfortranarray(rng.normal(size=(9, n_features)))]


def from_arrays(model: Any) -> LinearPredictor:
    """As a server answers from the linear load cache: the .npz bytes alone, no estimator."""
    arrays = linear_model_of(model)
    assert arrays is not None
    data = dump_linear(arrays)
    assert data is not None
    return LinearPredictor(load_linear(data), signature_from_estimator(model), fallback=None)


def assert_same(fast: LinearPredictor, estimator: Any, X: np.ndarray, proba: bool) -> None:
    expected = np.asarray(estimator.predict(X))
    assert np.array_equal(fast.predict(X), expected)
    assert fast.predict(X).dtype == expected.dtype
    if proba:
        expected_p = np.asarray(estimator.predict_proba(X), dtype=np.float64)
        assert np.array_equal(fast.predict_proba(X), expected_p)
        labels, probabilities = fast.predict_with_proba(X)
        assert np.array_equal(labels, expected)
        assert probabilities is not None and np.array_equal(probabilities, expected_p)


@pytest.mark.parametrize("seed", range(12))
def test_logistic_regression_matches_bit_for_bit(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_classes = [2, 2, 3, 5][seed % 4]
    n_features = int(rng.integers(1, 30))
    X, y = classification(rng, n_classes, n_features, strings=seed % 3 == 0)
    model = LogisticRegression(C=float(rng.uniform(0.01, 100)), max_iter=300,
                               fit_intercept=seed % 5 != 4).fit(X, y)
    fast = linear_predictor(model, signature_from_estimator(model))
    assert isinstance(fast, LinearPredictor)
    cached = from_arrays(model)
    for rows in inputs(rng, n_features):
        assert_same(fast, model, rows, proba=True)
        assert_same(cached, model, rows, proba=True)


@pytest.mark.parametrize("seed", range(8))
def test_linear_regressors_match_bit_for_bit(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    n_features = int(rng.integers(1, 25))
    X = rng.normal(size=(120, n_features))
    y = X @ rng.normal(size=n_features) + rng.normal(size=120)
    if seed % 2:
        y = np.column_stack([y, -2 * y + 1])  # two targets: a 2-D coefficient matrix
    kind = [LinearRegression(), Ridge(alpha=float(rng.uniform(0.1, 10))),
            LinearRegression(fit_intercept=False), Ridge(fit_intercept=False)][seed % 4]
    model = kind.fit(X, y)
    fast = linear_predictor(model, signature_from_estimator(model))
    assert isinstance(fast, LinearPredictor) and not fast.has_proba
    cached = from_arrays(model)
    for rows in inputs(rng, n_features):
        for predictor in (fast, cached):
            assert_same(predictor, model, rows, proba=False)
            assert predictor.predict_with_proba(rows)[1] is None


def test_refusals_stay_scikit_learns() -> None:
    X, y = classification(np.random.default_rng(7), 3, 4, strings=False)
    model = LogisticRegression(max_iter=300).fit(X, y)
    fast = linear_predictor(model, None)
    assert isinstance(fast, LinearPredictor)
    for bad in (np.array([[1.0, np.nan, 0.0, 0.0]]), np.ones((2, 5)), np.ones((0, 4))):
        with pytest.raises(ValueError) as ours:
            fast.predict_with_proba(bad)
        with pytest.raises(ValueError) as theirs:
            model.predict(bad)
        assert str(ours.value) == str(theirs.value)
    ints = np.arange(8).reshape(2, 4)  # not float: scikit-learn's own path, same answer
    assert np.array_equal(fast.predict(ints), model.predict(ints))


def test_only_the_exact_classes_take_the_numpy_path(tmp_path: Path) -> None:
    class Tweaked(LogisticRegression):
        def predict(self, X: Any) -> Any:
            return super().predict(X)

    X, y = classification(np.random.default_rng(3), 2, 3, strings=False)
    assert type(linear_predictor(Tweaked().fit(X, y), None)) is SklearnPredictor
    model = LogisticRegression().fit(X, y)
    # Served from its stored file exactly as the inference server loads it.
    loaded = load_predictor(write_skops(tmp_path / "lr.skops", model), "skops")
    assert isinstance(loaded, LinearPredictor)
    assert np.array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_probabilities_far_out_match_scipys_expit() -> None:
    """Decisions past exp's range (|x| > 709) and tiny ones: the same bits as scikit-learn."""
    X, y = classification(np.random.default_rng(5), 2, 2, strings=False)
    model = LogisticRegression(max_iter=300).fit(X, y)
    scale = 1.0 / np.abs(model.coef_).max()
    far = np.array([[v * scale, 0.0] for v in (-2e3, -745.0, -709.9, -37.0, -1e-12, 0.0,
                                               1e-300, 36.9, 709.9, 745.0, 2e3)])
    for predictor in (linear_predictor(model, None), from_arrays(model)):
        assert isinstance(predictor, LinearPredictor)
        assert_same(predictor, model, far, proba=True)


def test_from_the_arrays_alone_bad_input_is_refused_not_guessed() -> None:
    X, y = classification(np.random.default_rng(9), 3, 4, strings=True)
    cached = from_arrays(LogisticRegression(max_iter=300).fit(X, y))
    for bad in (np.array([[1.0, np.nan, 0.0, 0.0]]), np.ones((2, 5)), np.ones((0, 4))):
        with pytest.raises(Unprocessable, match="rows of 4 finite numbers"):
            cached.predict_with_proba(bad)


def bad_npz(**arrays: Any) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def compressed() -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, coef=np.ones((1, 3)), intercept=np.zeros(1),
                        classes=np.arange(2))
    return buffer.getvalue()


def patched(data: bytes, old: bytes, new: bytes) -> bytes:
    assert old in data
    return data.replace(old, new)


def good_npz() -> bytes:
    return bad_npz(coef=np.ones((1, 3)), intercept=np.zeros(1), classes=np.arange(2))


def encrypted_flag() -> bytes:
    """General-purpose flag bit 0 (encrypted) set in the local and central headers."""
    data = bytearray(good_npz())
    for signature, at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = 0
        while (start := data.find(signature, start)) >= 0:
            data[start + at] |= 1
            start += 4
    return bytes(data)


def many_members() -> bytes:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for n in range(50):
            archive.writestr(f"m{n}.npy", b"")
    return buffer.getvalue()


def claiming(rows: int) -> bytes:
    """A cache whose coef header claims `rows` x 3 float64 while holding one row's bytes."""
    data = bad_npz(coef=np.ones((1, 3)), intercept=np.zeros(1), classes=np.arange(2))
    forged = data.replace(b"(1, 3)", f"({rows}, 3)".encode())
    assert forged != data
    return forged


@pytest.mark.parametrize("data", [
    b"not an npz",
    bad_npz(coef=np.ones((1, 3))),  # no intercept
    bad_npz(coef=np.ones((1, 3)), intercept=np.zeros(1), extra=np.zeros(1)),
    bad_npz(coef=np.array([[1.0, np.inf, 0.0]]), intercept=np.zeros(1), classes=np.arange(2)),
    bad_npz(coef=np.ones((2, 3)), intercept=np.zeros(2), classes=np.arange(2)),  # 2 rows, 2 cls
    bad_npz(coef=np.ones((1, 3)), intercept=np.zeros(3), classes=np.arange(2)),
    bad_npz(coef=np.ones((1, 3), dtype=np.int64), intercept=np.zeros(1), classes=np.arange(2)),
    bad_npz(coef=np.ones((1, 3)), intercept=np.zeros(1), classes=np.array([1, "a"], object)),
    bad_npz(coef=np.ones((1, 3)), intercept=np.zeros(1), classes=np.arange(4).reshape(2, 2)),
    claiming(10**12),  # a header asking numpy to allocate terabytes
    claiming(2),
    compressed(),
    bad_npz(coef=np.ones(3), intercept=np.arange(5.0)),  # a regressor: 5 intercepts, 1 target
    bad_npz(coef=np.ones((2, 3)), intercept=np.arange(3.0)),  # 2 targets, 3 intercepts
    encrypted_flag(),
    many_members(),
    patched(good_npz(), b"'descr': '<f8'", b"'descr': ()   "),
    patched(good_npz(), b"\x93NUMPY\x01\x00", b"\x93NUMPY\x03\x00"),
    patched(good_npz(), b"'shape': (1, 3)", b"'shape': (1, 3"),
    patched(good_npz(), b"'shape': (1, 3)", b"'shape': (True,)"),
], ids=["garbage", "no-intercept", "extra-array", "not-finite", "rows-vs-classes",
        "intercept-width", "int-coef", "object-labels", "2d-labels", "huge-header",
        "short-data", "compressed", "regressor-intercepts", "targets-vs-intercepts",
        "encrypted-flag", "many-members", "empty-descr", "npy-version-3", "cut-header",
        "bool-shape"])
def test_a_linear_cache_that_is_not_a_consistent_model_is_refused(data: bytes) -> None:
    with pytest.raises(InvalidModelFile):
        load_linear(data)


def test_labels_that_need_pickle_get_no_arrays() -> None:
    X, y = classification(np.random.default_rng(4), 2, 3, strings=True)
    model = LogisticRegression().fit(X, y.astype(object))
    arrays = linear_model_of(model)
    assert arrays is not None and arrays.classes is not None
    assert arrays.classes.dtype == object and dump_linear(arrays) is None
