"""The exact allow-list: every name real models use is on it, every other reachable object is not.

The "re-exported name" cases are generated: every attribute of a loaded numpy, scipy, scikit-
learn or joblib module that is a module or a callable outside the list must be refused by
policy.resolve, which is what skops loading, the pickle scan and both unpicklers call.
"""

from __future__ import annotations

import importlib
import io
import os
import pickle
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import joblib
import numpy as np
import pytest
import skops.io

from app.errors import InvalidModelFile, UnsafeModel
from app.formats import pickle_format, policy
from app.formats.allowlist import MODULE_ALIASES, allow_list, canonical_name
from app.formats.skops_format import load_skops, trusted_types
from tests.formats.zoo import models

ZOO = sorted(models())
_EXTRA_MODULES = ("numpy.testing", "numpy.lib.npyio", "numpy.f2py", "scipy.io", "joblib",
                  "joblib.numpy_pickle_compat", "sklearn.utils._testing")


def _serialized(model: Any, tmp_path: Path) -> dict[str, bytes]:
    files = {f"pickle-{p}": pickle.dumps(model, protocol=p) for p in (2, 3, 4, 5)}
    for label, compress in (("joblib", 0), ("joblib-zlib", 3)):
        path = tmp_path / f"{label}.joblib"
        joblib.dump(model, path, compress=compress)
        files[label] = path.read_bytes()
    return files


@pytest.mark.parametrize("name", ZOO)
def test_every_name_a_real_model_uses_is_allowed(name: str, tmp_path: Path) -> None:
    model = models()[name]
    for label, data in _serialized(model, tmp_path).items():
        scan, detail = pickle_format.scan(data)
        assert scan.imported_globals, label
        assert all(policy.is_allowed(g) for g in scan.imported_globals), label
        loaded, _, _, _ = pickle_format.load_pickle(data, scanned=(scan, detail))
        assert type(loaded) is type(model), label
    data = skops.io.dumps(model)
    assert all(policy.is_allowed(t) for t in trusted_types(data))
    loaded, _ = load_skops(data)
    assert type(loaded) is type(model)


def test_loaded_models_predict_as_the_originals(tmp_path: Path) -> None:
    rows = np.abs(np.random.RandomState(1).normal(size=(6, 4))) + 0.5
    for name in ("hgb-clf", "knn-kd", "pipeline-log1p", "calibrated-svc", "mlp"):
        model = models()[name]
        path = tmp_path / f"{name}.joblib"
        joblib.dump(model, path)
        loaded, _, _, _ = pickle_format.load_pickle(path)
        np.testing.assert_array_equal(loaded.predict(rows), model.predict(rows))
        from_skops, _ = load_skops(skops.io.dumps(model))
        np.testing.assert_array_equal(from_skops.predict(rows), model.predict(rows))


def _package_modules() -> list[ModuleType]:
    allow_list()  # imports every estimator module
    for name in _EXTRA_MODULES:
        importlib.import_module(name)
    return [
        module for name, module in sorted(sys.modules.items())
        if isinstance(module, ModuleType) and name.split(".")[0] in
        ("numpy", "scipy", "sklearn", "joblib")
        and name not in MODULE_ALIASES  # shims resolve() never reads (it reads their targets)
    ]


def test_every_other_module_or_callable_reachable_in_the_packages_is_refused() -> None:
    allowed = allow_list()
    refused = 0
    dangerous = {id(os), id(pickle), id(subprocess), id(eval), id(exec), id(os.system)}
    dangerous_refused = 0
    for module in _package_modules():
        for attr, value in list(vars(module).items()):
            if not (isinstance(value, ModuleType) or callable(value)):
                continue
            if allowed.holds(value) and module.__name__ in allowed.modules:
                assert policy.resolve(module.__name__, attr) is value
                continue
            with pytest.raises(UnsafeModel, match="refuses it even for trusted uploads"):
                policy.resolve(module.__name__, attr)
            refused += 1
            dangerous_refused += id(value) in dangerous
    # The class is large, and holds the review's cases: os, pickle, builtins functions
    # re-exported by numpy, scipy or scikit-learn modules.
    assert refused > 10_000, refused
    assert dangerous_refused >= 20, dangerous_refused


@pytest.mark.parametrize("module, name", [
    ("_operator", "attrgetter"), ("operator", "methodcaller"), ("_operator", "methodcaller"),
    ("joblib.numpy_pickle", "NDArrayWrapper"), ("joblib.numpy_pickle", "load_compatibility"),
    ("joblib.numpy_pickle", "os"), ("joblib.numpy_pickle", "pickle"),
    ("numpy.lib._npyio_impl", "pickle"), ("numpy", "load"), ("numpy.lib.npyio", "DataSource"),
    ("builtins", "getattr"), ("builtins", "eval"), ("__builtin__", "eval"), ("builtins", "type"),
    ("copy_reg", "add_extension"), ("functools", "reduce"), ("sklearn.utils", "Bunch"),
])
def test_aliases_and_reexports_of_refused_objects_are_refused(module: str, name: str) -> None:
    with pytest.raises(UnsafeModel, match=name):
        policy.resolve(module, name)


@pytest.mark.parametrize("module, name", [
    ("numpy", "__builtins__"), ("numpy", "__loader__"), ("numpy", "__getattr__"),
    ("numpy.random._pickle", "__builtins__"), ("sklearn.base", "os.system"),
    ("numpy", "dtype.__class__"), ("", "dict"), ("numpy", ""), ("numpy", "1x"),
])
def test_dunders_dots_and_empty_names_are_refused(module: str, name: str) -> None:
    with pytest.raises(UnsafeModel):
        policy.resolve(module, name)


def test_the_lists_own_names_resolve_to_their_objects() -> None:
    allowed = allow_list()
    assert 300 < len(allowed) < 2_000, len(allowed)
    for name, obj in allowed.names.items():
        assert canonical_name(obj) == name
        assert policy.resolve_qualified(name) is obj
        assert not isinstance(obj, ModuleType)
    # numpy 1.x pickles name numpy.core.*; they resolve to the same objects.
    assert policy.resolve("numpy.core.multiarray", "_reconstruct") is \
        allowed.names["numpy._core.multiarray._reconstruct"]


def test_no_allowed_class_runs_code_when_discarded() -> None:
    for name, obj in allow_list().names.items():
        if isinstance(obj, type):
            assert not any("__del__" in vars(k) for k in obj.__mro__ if k is not object), name


class _Probe:
    pass


def test_only_numpy_object_returns_its_argument() -> None:
    """The pickle scan knows what class a call makes, except for numpy.object_(x), which
    returns x; any other allowed class doing so would need the scan's attention."""
    probe = _Probe()
    returning = set()
    for name, obj in allow_list().names.items():
        if not isinstance(obj, type):
            continue
        for make in (lambda o=obj: o(probe), lambda o=obj: o.__new__(o, probe)):
            try:
                made = make()
            except Exception:
                continue
            if made is probe:
                returning.add(name)
    assert returning == {"numpy.object_"}


def test_a_refused_name_is_not_imported(tmp_path: Path) -> None:
    """The module of a refused name is never imported, even when it exists."""
    code = (
        "import sys\n"
        "from app.formats import policy\n"
        "from app.errors import UnsafeModel\n"
        "assert 'tkinter' not in sys.modules\n"
        "try:\n    policy.resolve('tkinter', 'Tk')\nexcept UnsafeModel:\n    pass\n"
        "print('tkinter' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "False"


def test_invalid_and_unsafe_are_the_only_outcomes_of_resolve() -> None:
    with pytest.raises(InvalidModelFile, match="LogisticRegressionXYZ"):
        policy.resolve("sklearn.linear_model._logistic", "LogisticRegressionXYZ")
    with pytest.raises(UnsafeModel, match="computes the name"):
        policy.resolve(io.BytesIO(), "x")
