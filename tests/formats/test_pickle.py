"""pickle and joblib files: opcode scan, trust, hostile payloads, loading and predictions."""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import sklearn
from sklearn.preprocessing import StandardScaler

from app.errors import InvalidModelFile, TrustRequired, UnsafeModel
from app.formats import inspect_file, pickle_format
from app.formats.pickle_format import scan
from tests.formats.conftest import served_predictor


# --- hostile payloads: each would create `marker` if it were ever loaded --------------------
class OsSystem:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


class BuiltinExec:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (f"__import__('pathlib').Path({str(self.marker)!r}).touch()",))


class Popen:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (subprocess.Popen, (["touch", str(self.marker)],))


def _short_str(s: str) -> bytes:
    data = s.encode()
    return b"\x8c" + bytes([len(data)]) + data


def memo_stack_global_pickle(marker: Path) -> bytes:
    """STACK_GLOBAL whose operands come from the memo, with innocent strings pushed last."""
    return (
        b"\x80\x04"
        + _short_str("os") + b"\x94" + b"0"  # memo[0] = "os"; POP
        + _short_str("system") + b"\x94" + b"0"  # memo[1] = "system"; POP
        + _short_str("sklearn.base") + _short_str("BaseEstimator") + b"00"
        + b"h\x00h\x01\x93"  # BINGET 0, BINGET 1, STACK_GLOBAL -> os.system
        + _short_str(f"touch {marker}") + b"\x85R."  # TUPLE1, REDUCE, STOP
    )


def protocol0_eval_pickle(marker: Path) -> bytes:
    code = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    return b"c__builtin__\neval\n(" + b"V" + code.encode() + b"\ntR."


def inst_pickle(marker: Path) -> bytes:
    return b"(S'touch " + str(marker).encode() + b"'\nios\nsystem\n."


def dotted_name_pickle(marker: Path) -> bytes:
    """Protocol 4 resolves dotted names attribute by attribute: joblib.numpy_pickle.os.system."""
    return (
        b"\x80\x04" + _short_str("joblib.numpy_pickle") + _short_str("os.system") + b"\x93"
        + _short_str(f"touch {marker}") + b"\x85R."
    )


def computed_name_pickle(marker: Path) -> bytes:
    """The module name of STACK_GLOBAL is the result of a call made while loading."""
    return (
        b"\x80\x04" + _short_str("builtins") + _short_str("str") + b"\x93"
        + _short_str("os") + b"\x85R" + _short_str("system") + b"\x93"
        + _short_str(f"touch {marker}") + b"\x85R."
    )


def numpy_runstring_pickle(marker: Path) -> bytes:
    code = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    return (
        b"\x80\x04" + _short_str("numpy.testing._private.utils") + _short_str("runstring") + b"\x93"
        + _short_str(code) + b"}\x86R."
    )


HOSTILE: dict[str, Any] = {
    "os.system": lambda m: pickle.dumps(OsSystem(m)),
    "builtins.exec": lambda m: pickle.dumps(BuiltinExec(m)),
    "subprocess.Popen": lambda m: pickle.dumps(Popen(m)),
    "stack-global-memo": memo_stack_global_pickle,
    "protocol0-eval": protocol0_eval_pickle,
    "inst-opcode": inst_pickle,
    "dotted-name": dotted_name_pickle,
    "computed-name": computed_name_pickle,
    "numpy-runstring": numpy_runstring_pickle,
    "joblib-object-array": None,  # built in the test: needs tmp_path for joblib.dump
}


def _hostile_file(kind: str, tmp_path: Path, marker: Path) -> Path:
    path = tmp_path / "model.joblib"
    if kind == "joblib-object-array":
        arr = np.empty(2, dtype=object)
        arr[0] = OsSystem(marker)
        joblib.dump({"weights": np.arange(3.0), "objects": arr}, path)
    else:
        path.write_bytes(HOSTILE[kind](marker))
    return path


def test_hostile_payloads_are_live(tmp_path: Path) -> None:
    """The marker check below means something: loading such a file does run the payload."""
    for kind in ("builtins.exec", "protocol0-eval"):
        marker = tmp_path / f"live-{kind}"
        pickle.loads(HOSTILE[kind](marker))
        assert marker.exists()


@pytest.mark.parametrize("kind", sorted(HOSTILE))
@pytest.mark.parametrize("trust", [False, True])
def test_hostile_pickle_refused_before_anything_runs(
    kind: str, trust: bool, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    path = _hostile_file(kind, tmp_path, marker)
    with pytest.raises(UnsafeModel) as info:
        inspect_file(path, trust=trust, filename="model.joblib")
    assert str(tmp_path) not in info.value.message
    with pytest.raises(UnsafeModel):
        pickle_format.load_pickle(path)
    assert not marker.exists()


def test_refusal_names_the_denied_global(tmp_path: Path) -> None:
    path = tmp_path / "m.pkl"
    path.write_bytes(memo_stack_global_pickle(tmp_path / "marker"))
    with pytest.raises(UnsafeModel, match=r"os\.system"):
        inspect_file(path, trust=True)


@pytest.mark.parametrize("kind", ["os.system", "subprocess.Popen"])
def test_hostile_pickle_inside_compressed_joblib_refused(kind: str, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "m.joblib"
    payload = {"os.system": OsSystem, "subprocess.Popen": Popen}[kind](marker)
    joblib.dump({"a": np.zeros(3), "b": payload}, path, compress=3)
    with pytest.raises(UnsafeModel):
        inspect_file(path, trust=True)
    assert not marker.exists()


# --- ordinary models -------------------------------------------------------------------------
COMPRESSIONS = [0, 3, True, ("gzip", 3), ("bz2", 3), ("xz", 3), ("lzma", 3)]


@pytest.mark.parametrize("compress", COMPRESSIONS, ids=str)
def test_joblib_roundtrip(compress: Any, forest: Any, rows: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "forest.joblib"
    joblib.dump(forest, path, compress=compress)
    result = inspect_file(path, trust=True, filename=path.name)
    assert (result.format, result.format_detail) == ("pickle", "joblib")
    assert result.requires_trust is True
    assert "sklearn.ensemble._forest.RandomForestClassifier" in result.imported_globals
    assert result.signature is not None
    assert result.signature.n_features == 4
    assert result.signature.classes == (0, 1, 2)
    assert result.signature.outputs == ("predict", "predict_proba")
    assert result.signature.task == "classification"
    assert result.environment["scikit-learn"] == sklearn.__version__
    assert result.warnings == ()
    predictor = served_predictor(path, tmp_path)
    np.testing.assert_array_equal(predictor.predict(rows), forest.predict(rows))
    np.testing.assert_array_equal(predictor.predict_proba(rows), forest.predict_proba(rows))


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_pickle_protocols(protocol: int, pipeline: Any, rows: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "pipe.pkl"
    path.write_bytes(pickle.dumps(pipeline, protocol=protocol))
    result = inspect_file(path, trust=True, filename=path.name)
    assert result.format_detail == "pickle"
    assert "sklearn.pipeline.Pipeline" in result.imported_globals
    assert "sklearn.preprocessing._data.StandardScaler" in result.imported_globals
    predictor = served_predictor(path, tmp_path)
    np.testing.assert_array_equal(predictor.predict(rows), pipeline.predict(rows))


def test_regression_pickle(linreg: Any, iris: Any, tmp_path: Path) -> None:
    X, _ = iris
    path = tmp_path / "lin.joblib"
    joblib.dump(linreg, path)
    result = inspect_file(path, trust=True)
    assert result.signature is not None
    assert (result.signature.task, result.signature.classes) == ("regression", None)
    assert result.signature.outputs == ("predict",)
    predictor = served_predictor(path, tmp_path)
    assert not predictor.has_proba
    np.testing.assert_array_equal(predictor.predict(X[:5, 1:]), linreg.predict(X[:5, 1:]))


def test_clean_pickle_without_trust_lists_globals(logreg: Any, tmp_path: Path) -> None:
    path = tmp_path / "m.joblib"
    joblib.dump(logreg, path)
    with pytest.raises(TrustRequired) as info:
        inspect_file(path, trust=False)
    message = info.value.message
    assert "sklearn.linear_model._logistic.LogisticRegression" in message
    assert '{"trust": true}' in message and "token" in message


@pytest.mark.parametrize("trust", [False, True])
def test_names_outside_the_allow_list_are_refused_even_when_trusted(
    trust: bool, tmp_path: Path
) -> None:
    """Trust lets a pickle be opened at all; it never widens what it may import."""
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps({"when": __import__("decimal").Decimal("1.5")}))
    with pytest.raises(UnsafeModel, match=r"decimal\.Decimal"):
        inspect_file(path, trust=trust)


def test_scan_does_not_import_unknown_modules(tmp_path: Path, logreg: Any) -> None:
    """A module outside the allow-list's exact modules is refused by name, never imported."""
    import sys

    path = tmp_path / "m.pkl"
    data = pickle.dumps(logreg, protocol=2)
    data = data.replace(b"sklearn.linear_model._logistic", b"nowhere_to_be_found_module_xy")
    path.write_bytes(data)
    with pytest.raises(UnsafeModel, match=r"nowhere_to_be_found_module_xy\.LogisticRegression"):
        scan(path)
    with pytest.raises(UnsafeModel, match="nowhere_to_be_found_module_xy"):
        inspect_file(path, trust=True)
    assert "nowhere_to_be_found_module_xy" not in sys.modules


def test_a_name_missing_from_an_allowed_module_is_a_damaged_file(
    tmp_path: Path, logreg: Any
) -> None:
    """An allowed module without the name (another library version wrote it) is a 4xx naming it."""
    path = tmp_path / "m.pkl"
    data = pickle.dumps(logreg, protocol=2)
    path.write_bytes(data.replace(b"\nLogisticRegression\n", b"\nLogisticRegressiox\n"))
    with pytest.raises(InvalidModelFile, match="LogisticRegressiox"):
        inspect_file(path, trust=True)


def test_truncated_joblib(forest: Any, tmp_path: Path) -> None:
    path = tmp_path / "forest.joblib"
    joblib.dump(forest, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    for trust in (False, True):
        with pytest.raises(InvalidModelFile):
            inspect_file(path, trust=trust)


def test_truncated_compressed_joblib(forest: Any, tmp_path: Path) -> None:
    path = tmp_path / "forest.joblib"
    joblib.dump(forest, path, compress=3)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(InvalidModelFile):
        inspect_file(path, trust=True)


def test_compressed_bomb_is_capped(tmp_path: Path) -> None:
    from app.formats import ZipLimits

    path = tmp_path / "bomb.joblib"
    joblib.dump(np.zeros(5_000_000), path, compress=3)
    with pytest.raises(UnsafeModel, match="expands to more than"):
        inspect_file(path, trust=True, limits=ZipLimits(max_total_bytes=1 << 20))


def test_object_without_predict(tmp_path: Path, iris: Any) -> None:
    path = tmp_path / "scaler.joblib"
    joblib.dump(StandardScaler().fit(iris[0]), path)
    with pytest.raises(InvalidModelFile, match="StandardScaler.*no predict"):
        inspect_file(path, trust=True)


def _with_sklearn_version(estimator: Any, version: str) -> bytes:
    data = pickle.dumps(estimator, protocol=2)  # protocol 2: no frames, so lengths may change
    old = sklearn.__version__.encode()
    packed = b"X" + struct.pack("<I", len(old)) + old
    assert packed in data
    return data.replace(packed, b"X" + struct.pack("<I", len(version)) + version.encode())


def test_other_minor_version_warns(logreg: Any, rows: np.ndarray, tmp_path: Path) -> None:
    major, minor = sklearn.__version__.split(".")[:2]
    other = f"{major}.{int(minor) - 1}.0"
    path = tmp_path / "old.pkl"
    path.write_bytes(_with_sklearn_version(logreg, other))
    result = inspect_file(path, trust=True)
    assert result.environment["scikit-learn"] == other
    assert len(result.warnings) == 1 and other in result.warnings[0]
    predictor = served_predictor(path, tmp_path)  # loads despite warnings-as-errors
    np.testing.assert_array_equal(predictor.predict(rows), logreg.predict(rows))


def test_other_patch_version_does_not_warn(logreg: Any, tmp_path: Path) -> None:
    major, minor = sklearn.__version__.split(".")[:2]
    other = f"{major}.{minor}.99"
    path = tmp_path / "patch.pkl"
    path.write_bytes(_with_sklearn_version(logreg, other))
    result = inspect_file(path, trust=True)
    assert result.environment["scikit-learn"] == other
    assert result.warnings == ()


@pytest.mark.parametrize("kind", ["os.system", "joblib-object-array", "protocol0-eval"])
def test_loader_guard_refuses_even_if_the_scan_missed(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defence in depth: find_class applies the allow-list again while loading."""
    from app.formats import pickle_format
    from app.formats.pickle_scan import PickleScan

    marker = tmp_path / "marker"
    path = _hostile_file(kind, tmp_path, marker)
    detail = "joblib" if kind.startswith("joblib") else "pickle"
    monkeypatch.setattr(pickle_format, "scan", lambda *a, **k: (PickleScan((), 0, 4), detail))
    with pytest.raises(UnsafeModel):
        pickle_format.load_pickle(path)
    assert not marker.exists()


def test_numpy_random_state_is_accepted(iris: Any, rows: np.ndarray, tmp_path: Path) -> None:
    """numpy pickles RandomState via numpy.random._pickle.__randomstate_ctor (a dunder name)."""
    from sklearn.ensemble import RandomForestClassifier

    model = RandomForestClassifier(n_estimators=3, random_state=np.random.RandomState(0))
    model.fit(*iris)
    path = tmp_path / "rs.joblib"
    joblib.dump(model, path)
    result = inspect_file(path, trust=True)
    assert "numpy.random._pickle.__randomstate_ctor" in result.imported_globals
    np.testing.assert_array_equal(served_predictor(path, tmp_path).predict(rows),
                                  model.predict(rows))


@pytest.mark.parametrize("name", ["__builtins__", "__loader__", "__getattr__", "__import__"])
def test_module_dunders_refused(name: str, tmp_path: Path) -> None:
    path = tmp_path / "m.pkl"
    path.write_bytes(b"\x80\x04" + _short_str("numpy") + _short_str(name) + b"\x93.")
    with pytest.raises(UnsafeModel, match="not a plain importable name"):
        inspect_file(path, trust=True)


def test_a_compressed_bomb_is_refused_before_it_fills_memory(tmp_path: Path) -> None:
    import tracemalloc

    path = tmp_path / "bomb.joblib"
    joblib.dump({"zeros": b"\0" * (300 << 20)}, path, compress=("zlib", 9))
    assert path.stat().st_size < 2 << 20  # a few hundred KB that inflate to 300 MB
    tracemalloc.start()
    try:
        with pytest.raises(UnsafeModel, match="expands"):
            inspect_file(path, trust=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 150 << 20, peak
