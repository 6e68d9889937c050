"""The exact classes and functions a model file may name: one list for skops, pickle and joblib.

A file names what it needs as "module" + "name". Judging that text by prefix ("numpy.",
"sklearn.") is not enough: numpy, scipy and scikit-learn modules re-export `os`, `pickle`,
`builtins` and file loaders under names inside those prefixes. So the list below holds the
objects themselves, and a name is accepted only when it resolves to one of them (policy.py).

How the list is derived (nothing is matched by prefix):
- every estimator class scikit-learn registers (`sklearn.utils.all_estimators`);
- the internal classes fitted estimators hold: tree structures, HistGradientBoosting's predictor
  and binner, loss and link objects, neighbour trees and distance metrics, MLP optimizers,
  calibrators; plus the Cython re-constructors their pickles call (`newObj`,
  `__pyx_unpickle_<Class>` of an allowed class) and `check_array`, which HistGradientBoosting
  keeps in a `functools.partial` when it has categorical features;
- numpy's containers and dtypes (ndarray, matrix, masked arrays, dtype, the scalar types, the
  array re-constructors), its ufuncs (what a FunctionTransformer usually holds) and the
  numpy.random states and their pickle constructors; scipy.sparse matrices and arrays;
- the builtins that construct plain values, and the few helpers pickle and joblib write for
  them (copyreg._reconstructor, _codecs.encode, collections' dicts, joblib's array wrapper).

tests/formats/test_allowlist.py checks that every name real models use (a set of estimators
in pickle protocols 2-5, joblib and skops) is here, and that every other callable or module
reachable as an attribute of numpy, scipy and scikit-learn modules is refused.
"""

from __future__ import annotations

import functools
import importlib
import threading
from types import ModuleType
from typing import Any

# Modules whose classes (those defined in the module itself) fitted estimators hold.
_INTERNAL_CLASS_MODULES = (
    "sklearn._loss.loss",
    "sklearn._loss.link",
    "sklearn._loss._loss",
    "sklearn.ensemble._hist_gradient_boosting.predictor",
    "sklearn.ensemble._hist_gradient_boosting.binning",
    "sklearn.neighbors._kd_tree",
    "sklearn.neighbors._ball_tree",
    "sklearn.metrics._dist_metrics",
    "sklearn.neural_network._stochastic_optimizers",
)

# Single internal names: "module:name".
_INTERNAL_NAMES = (
    "sklearn.tree._tree:Tree",
    "sklearn.calibration:_CalibratedClassifier",
    "sklearn.calibration:_SigmoidCalibration",
    "sklearn.utils.validation:check_array",
    "sklearn.neighbors._kd_tree:newObj",
    "sklearn.neighbors._ball_tree:newObj",
    "sklearn.metrics._dist_metrics:newObj",
    "numpy:ndarray",
    "numpy:dtype",
    "numpy:matrix",
    "numpy.ma:MaskedArray",
    "numpy.ma.core:_mareconstruct",
    "numpy._core.multiarray:_reconstruct",
    "numpy._core.multiarray:scalar",
    "numpy._core.numeric:_frombuffer",
    "numpy.random:RandomState",
    "numpy.random:Generator",
    "numpy.random:SeedSequence",
    "numpy.random._pickle:__randomstate_ctor",
    "numpy.random._pickle:__generator_ctor",
    "numpy.random._pickle:__bit_generator_ctor",
    "numpy.random.bit_generator:__pyx_unpickle_SeedSequence",
    "builtins:dict",
    "builtins:list",
    "builtins:tuple",
    "builtins:set",
    "builtins:frozenset",
    "builtins:bytes",
    "builtins:bytearray",
    "builtins:str",
    "builtins:int",
    "builtins:float",
    "builtins:complex",
    "builtins:bool",
    "builtins:slice",
    "builtins:range",
    "builtins:object",
    "copyreg:_reconstructor",
    "_codecs:encode",
    "collections:OrderedDict",
    "collections:defaultdict",
    "functools:partial",
    "joblib.numpy_pickle:NumpyArrayWrapper",
)

# Module names older writers used for objects that now live elsewhere: numpy 1.x pickles name
# numpy.core.*, which numpy 2 keeps only as a shim that warns on every attribute it hands out.
MODULE_ALIASES: dict[str, str] = {
    "numpy.core.multiarray": "numpy._core.multiarray",
    "numpy.core.numeric": "numpy._core.numeric",
}


class AllowList:
    """The allowed objects, by identity, and the canonical "module.name" of each."""

    def __init__(self, objects: list[Any]) -> None:
        self._by_id: dict[int, Any] = {}
        self.names: dict[str, Any] = {}
        for obj in objects:
            self._by_id[id(obj)] = obj
            self.names[canonical_name(obj)] = obj
        self.modules: frozenset[str] = frozenset(
            name.rpartition(".")[0] for name in self.names
        ) | frozenset(MODULE_ALIASES)

    def holds(self, obj: Any) -> bool:
        return self._by_id.get(id(obj)) is obj

    def __len__(self) -> int:
        return len(self.names)


def canonical_name(obj: Any) -> str:
    """The "module.name" pickle and skops write for `obj` (its own __module__ and __name__)."""
    return f"{obj.__module__}.{obj.__name__}"


def _defined_classes(module: ModuleType) -> list[type]:
    return [
        value for value in vars(module).values()
        if isinstance(value, type) and value.__module__ == module.__name__
    ]


def _cython_unpicklers(module: ModuleType, classes: list[type]) -> list[Any]:
    """The `__pyx_unpickle_<Class>` functions Cython writes into pickles of allowed classes."""
    names = {f"__pyx_unpickle_{cls.__name__}" for cls in classes}
    return [value for name, value in vars(module).items() if name in names]


def _named(spec: str) -> Any:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def _derive() -> list[Any]:
    import numpy as np
    import scipy.sparse
    from sklearn.utils import all_estimators

    objects: list[Any] = [cls for _, cls in all_estimators()]
    for module_name in _INTERNAL_CLASS_MODULES:
        module = importlib.import_module(module_name)
        classes = _defined_classes(module)
        objects += classes + _cython_unpicklers(module, classes)
    objects += [_named(spec) for spec in _INTERNAL_NAMES]
    objects += sorted(set(np.sctypeDict.values()), key=lambda t: t.__name__)
    objects += [value for value in vars(np).values() if isinstance(value, np.ufunc)]
    objects += [
        value for value in vars(np.random).values()
        if isinstance(value, type) and issubclass(value, np.random.BitGenerator)
    ]
    objects += [
        value for value in vars(scipy.sparse).values()
        if isinstance(value, type) and issubclass(value, scipy.sparse._base._spbase)
        and not value.__name__.startswith("_")
    ]
    # One entry per object, in a stable order; only objects pickle can name by their own
    # module and name (what a file would write, and what the identity check compares with).
    unique: dict[int, Any] = {}
    for obj in objects:
        if not isinstance(obj, ModuleType) and _reachable(obj):
            unique.setdefault(id(obj), obj)
    return list(unique.values())


def _reachable(obj: Any) -> bool:
    module, name = getattr(obj, "__module__", None), getattr(obj, "__name__", None)
    if not isinstance(module, str) or not isinstance(name, str):
        return False
    try:
        return getattr(importlib.import_module(module), name) is obj
    except (ImportError, AttributeError):
        return False


_lock = threading.Lock()


@functools.cache
def _cached() -> AllowList:
    return AllowList(_derive())


def allow_list() -> AllowList:
    """The list, derived once per process (it imports scikit-learn's estimator modules, about a
    second, which loading a model would mostly do anyway)."""
    with _lock:
        return _cached()
