"""Structure checks for libsvm models (SVC, NuSVC, SVR, NuSVR, OneClassSVM).

libsvm rebuilds its model from these arrays at every prediction: len(_n_support) classes,
len(support_) support vectors (rows of support_vectors_, or columns of a precomputed kernel),
(classes - 1) rows of dual coefficients, one intercept (and Platt pair) per class pair. It
copies and indexes them by those counts without comparing them, so they must agree.
"""

from __future__ import annotations

from typing import Any

from app.formats.structure_common import array, fail, feature_count, shape_of, vars_of

CLASSIFIERS = ("c_svc", "nu_svc")  # libsvm's svm_type 0 and 1: the ones that count per class


def check_libsvm(model: Any, where: str, holder: Any) -> None:
    import numpy as np

    attributes = vars_of(model) or {}
    if "support_" not in attributes:
        return  # not fitted
    support = array(attributes["support_"], f"{where}.support_", "support_", ndim=1)
    count = len(support)
    per_class = array(attributes.get("_n_support"), f"{where}._n_support", "_n_support",
                      ndim=1)
    classes = len(per_class)
    if getattr(type(model), "_impl", None) in CLASSIFIERS:
        if classes < 2 or per_class.min() < 0 or int(per_class.sum()) != count:
            fail(where, f"counts support vectors per class as {per_class.tolist()[:10]}, which "
                 f"do not add up to its {count} support vectors")
    elif classes != 2:
        fail(where, f"has {classes} support counts; a regression or one-class SVM has 2")
    pairs = classes * (classes - 1) // 2
    expected = {"_dual_coef_": (classes - 1, count), "dual_coef_": (classes - 1, count),
                "_intercept_": (pairs,), "intercept_": (pairs,)}
    for name, shape in expected.items():
        part = attributes.get(name)
        if part is not None and getattr(part, "shape", None) != shape:
            fail(f"{where}.{name}", f"has shape {shape_of(part)}, not {shape}")
    dual = attributes.get("_dual_coef_")
    if dual is not None and not isinstance(dual, np.ndarray) \
            and np.size(dual.data) != (classes - 1) * count:
        fail(f"{where}._dual_coef_", "is a sparse matrix that does not store every "
             "coefficient")
    probabilities = [attributes.get("_probA"), attributes.get("_probB")]
    shapes = {getattr(p, "shape", None) for p in probabilities}
    if len(shapes) != 1 or shapes.pop() not in ((0,), (pairs,)):
        fail(where, f"has Platt scaling arrays of {', '.join(map(shape_of, probabilities))}, "
             f"not both empty or both {pairs} long")
    _check_vectors(attributes, where, support, feature_count(model))


def _check_vectors(attributes: dict[str, Any], where: str, support: Any,
                   n_features: int | None) -> None:
    """Support vectors are rows of support_vectors_, or, with a precomputed kernel, columns
    of the kernel matrix a client sends (as many as the training samples)."""
    kernel = attributes.get("kernel")
    vectors = attributes.get("support_vectors_")
    if kernel == "precomputed" or callable(kernel):
        fitted = attributes.get("shape_fit_")
        samples = fitted[0] if isinstance(fitted, tuple) and fitted else None
        if not isinstance(samples, int) or (
                len(support) and (support.min() < 0 or support.max() >= samples)):
            fail(f"{where}.support_", f"names a training sample outside the {samples} the "
                 "precomputed kernel has (shape_fit_)")
        return
    shape = getattr(vectors, "shape", None)
    if not isinstance(shape, tuple) or len(shape) != 2 or shape[0] != len(support):
        fail(f"{where}.support_vectors_", f"has shape {shape_of(vectors)}, not one row for "
             f"each of the {len(support)} support vectors")
    if n_features is not None and shape[1] != n_features:
        fail(f"{where}.support_vectors_", f"has {shape[1]} columns, but the model takes "
             f"{n_features} features")
