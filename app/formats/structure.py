"""check_structures: refuse a loaded model whose internal arrays would make native code read or
write outside its memory.

scikit-learn's compiled predict code trusts the arrays it was fitted with: a decision tree's
child indices, a histogram booster's node table, a KD-tree's index permutation, an SVM's support
vector counts are used as offsets without bounds checks. A file (skops needs no trust for these
types) that carries an out-of-range index makes the inference server read foreign memory into
predictions or die with SIGSEGV on every prediction, after every restart. So every model is
walked after it is loaded, before it is described or served, and these structures are checked
with vectorised numpy (a 500-tree forest takes milliseconds; benchmarks/bench_structure.py):

- sklearn.tree Tree (decision trees, random/extra forests, gradient boosting, isolation forests,
  AdaBoost, bagging): structure_trees.py.
- HistGradientBoosting's TreePredictor node tables and bin mapper: structure_trees.py.
- KDTree / BallTree and their distance metrics, neighbours' class labels: structure_neighbors.py.
- libsvm models (SVC, NuSVC, SVR, NuSVR, OneClassSVM): structure_svm.py.
- scipy.sparse matrices anywhere in the graph: full index check (here).
- any estimator with n_features_in_ whose coefficient-like arrays disagree with it (here).

Not validated, because nothing native indexes with them: estimators whose predict is plain
numpy (linear models, naive Bayes, MLPs, scalers...), where a bad shape is a Python exception
that the server already reports as a failed prediction. The walk is iterative and bounded
(MAX_PARTS objects), follows attributes, lists, tuples, dicts and object arrays, and never calls
methods or properties of the loaded objects (it reads instance dicts and C-level fields only).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import cache
from types import BuiltinFunctionType, FunctionType, MethodType, ModuleType
from typing import Any

from app.errors import InvalidModelFile
from app.formats.structure_common import fail, feature_count, shape_of, vars_of

MAX_PARTS = 2_000_000  # objects walked; a model past this is refused rather than half-checked

# Instance attributes whose last axis is one per input feature, in every estimator that sets
# them (coef_ of linear models, centres of k-means and mixtures, PCA-like components...).
_PER_FEATURE = ("coef_", "cluster_centers_", "components_", "means_", "mean_", "var_",
                "scale_", "theta_", "feature_log_prob_", "_fit_X")

_PLAIN = (type(None), bool, int, float, complex, str, bytes, bytearray, range, slice, type,
          FunctionType, BuiltinFunctionType, MethodType, ModuleType)

Check = Callable[[Any, str, Any], None]  # (object, where it is, the object holding it)


def check_structures(obj: Any) -> None:
    """Raise InvalidModelFile naming the first structure native code could not use safely."""
    checks = _checks()
    for item, where, holder in _walk(obj):
        for kind, check in checks:
            if isinstance(item, kind):
                check(item, where, holder)
        if isinstance(vars_of(item), dict):
            _check_per_feature(item, where)


def _walk(root: Any) -> Iterator[tuple[Any, str, Any]]:
    """(object, path, holder) for every non-plain object reachable from root, each once."""
    import numpy as np

    seen: set[int] = set()
    todo: list[tuple[Any, str, Any]] = [(root, "", None)]
    while todo:
        item, where, holder = todo.pop()
        if isinstance(item, (*_PLAIN, np.generic, np.dtype)):
            continue
        if id(item) in seen:
            continue
        seen.add(id(item))
        if len(seen) > MAX_PARTS:
            raise InvalidModelFile(
                f"The model has more than {MAX_PARTS} parts; ModelDepot does not check or "
                "serve models that large."
            )
        yield item, where, holder
        todo.extend(reversed(list(_parts(item, where))))


def _parts(item: Any, where: str) -> Iterator[tuple[Any, str, Any]]:
    import numpy as np

    if isinstance(item, np.ndarray):
        if item.dtype == object:
            for index in np.ndindex(item.shape):
                shown = ", ".join(str(i) for i in index)
                yield item[index], f"{where}[{shown}]", item
        return
    if isinstance(item, list | tuple):
        for i, part in enumerate(item):
            yield part, f"{where}[{i}]", item
    elif isinstance(item, dict):
        for key, part in item.items():
            yield key, f"{where} (a key)", item
            yield part, f"{where}[{key!r}]"[:200], item
    elif isinstance(item, set | frozenset):
        for part in item:
            yield part, f"{where} (a member)", item
    elif (attributes := vars_of(item)) is not None:
        for name, part in attributes.items():
            yield part, f"{where}.{name}", item


@cache
def _checks() -> tuple[tuple[type | tuple[type, ...], Check], ...]:
    """Which check runs on which type; imported on first use (a cold start stays light)."""
    import scipy.sparse as sp
    from sklearn.ensemble import BaseEnsemble
    from sklearn.ensemble._hist_gradient_boosting.gradient_boosting import (
        BaseHistGradientBoosting,
    )
    from sklearn.neighbors._base import NeighborsBase
    from sklearn.svm._base import BaseLibSVM
    from sklearn.tree._tree import Tree

    from app.formats import structure_neighbors, structure_svm, structure_trees

    return (
        ((sp.spmatrix, sp.sparray), _check_sparse),
        (Tree, structure_trees.check_tree),
        (BaseEnsemble, structure_trees.check_ensemble),
        (BaseHistGradientBoosting, structure_trees.check_hist_boosting),
        (structure_neighbors.binary_tree_types(), structure_neighbors.check_binary_tree),
        (NeighborsBase, structure_neighbors.check_neighbors),
        (BaseLibSVM, structure_svm.check_libsvm),
    )


def _check_sparse(matrix: Any, where: str, holder: Any) -> None:
    """Index arrays within the shape, index pointers monotonic (scipy's own full check)."""
    import numpy as np

    fmt = matrix.format
    try:
        if fmt in ("csr", "csc", "bsr"):
            matrix.check_format(full_check=True)
        elif fmt == "coo":
            rows, cols = matrix.shape
            for axis, (index, size) in enumerate(zip(matrix.coords, (rows, cols), strict=True)):
                if index.size and (np.min(index) < 0 or np.max(index) >= size):
                    raise ValueError(f"a coordinate on axis {axis} is outside 0..{size - 1}")
        else:
            fail(where, f"is a scipy.sparse {fmt} matrix, a layout ModelDepot does not check; "
                 "save the model with CSR, CSC or COO matrices")
    except (ValueError, TypeError, IndexError) as exc:
        fail(where, f"is a sparse matrix whose indices are inconsistent ({exc})")


def _check_per_feature(estimator: Any, where: str) -> None:
    """Coefficient-like arrays agree with n_features_in_ (a cheap generic consistency check)."""
    import numpy as np

    attributes = vars_of(estimator) or {}
    n_features = feature_count(estimator)
    if n_features is None:
        return
    names = attributes.get("feature_names_in_")
    if isinstance(names, np.ndarray) and names.shape != (n_features,):
        fail(where, f"names {shape_of(names)} input features in feature_names_in_, but "
             f"n_features_in_ is {n_features}")
    for name in _PER_FEATURE:
        shape = getattr(attributes.get(name), "shape", None)
        if not isinstance(shape, tuple) or not shape:
            continue
        if shape[-1] != n_features:
            fail(f"{where}.{name}", f"has {shape[-1]} columns, but the estimator takes "
                 f"{n_features} features (n_features_in_)")
