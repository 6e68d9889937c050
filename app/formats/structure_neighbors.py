"""Structure checks for nearest-neighbour models: KDTree / BallTree and class labels.

A KD or ball tree query walks nodes i -> 2i+1, 2i+2, reads the samples idx_array[idx_start:
idx_end] of each node, and measures distances with a metric whose weight vector or matrix is
read up to the data's width: all without bounds checks. Classifiers then add a vote at
class_scores[row, _y[neighbour]] in compiled code, so every label must name a class.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from app.formats.structure_common import array, fail, shape_of, vars_of

MAX_LEVELS = 62  # 2**levels - 1 nodes must fit an int64


@cache
def binary_tree_types() -> tuple[Any, ...]:
    """Each of sklearn's tree modules compiles its own BinaryTree base classes."""
    from sklearn.neighbors import _ball_tree, _kd_tree

    return (_ball_tree.BinaryTree32, _ball_tree.BinaryTree64,
            _kd_tree.BinaryTree32, _kd_tree.BinaryTree64)


def check_binary_tree(tree: Any, where: str, holder: Any) -> None:
    import numpy as np
    from sklearn.neighbors._kd_tree import NodeData

    state = tree.__getstate__()
    data, order, node_data, bounds = state[:4]
    levels, n_nodes, metric, weight = state[5], state[6], state[11], state[12]
    data = array(data, where, "its data", ndim=2, kind="f")
    n, d = data.shape
    order = array(order, where, "its index array", ndim=1)
    if order.shape != (n,) or (n and (order.min() < 0 or order.max() >= n)) \
            or (n and np.bincount(order, minlength=n).max() != 1):
        fail(where, f"has an index array that is not a permutation of its {n} samples")
    if not 1 <= levels <= MAX_LEVELS or n_nodes != 2**levels - 1:
        fail(where, f"has {n_nodes} nodes in {levels} levels (a full binary tree has "
             "2**levels - 1)")
    if not isinstance(node_data, np.ndarray) or node_data.dtype != NodeData \
            or node_data.shape != (n_nodes,):
        fail(where, f"has node data of {shape_of(node_data)}, not {n_nodes} node records")
    start, end = node_data["idx_start"], node_data["idx_end"]
    bad = (start < 0) | (start > end) | (end > n)
    if bad.any():
        k = int(np.argmax(bad))
        fail(where, f"node {k} covers samples {int(start[k])}..{int(end[k])}, outside 0..{n}")
    bad = (node_data["is_leaf"] == 0) & (2 * np.arange(n_nodes) + 2 >= n_nodes)
    if bad.any():
        fail(where, f"node {int(np.argmax(bad))} is not a leaf but has no children")
    rows = 2 if "KDTree" in type(tree).__name__ else 1
    if getattr(bounds, "shape", None) != (rows, n_nodes, d):
        fail(where, f"has node bounds of {shape_of(bounds)}, not {rows}x{n_nodes}x{d}")
    if weight is not None and getattr(weight, "shape", None) != (n,):
        fail(where, f"has {shape_of(weight)} sample weights for {n} samples")
    _check_metric(metric, f"{where}.dist_metric", d)


def _check_metric(metric: Any, where: str, width: int) -> None:
    """The metric's weights (vec) and matrix (mat) are read up to the data's width."""
    name = type(metric).__name__.rstrip("0123456789")
    _, vec, mat = metric.__getstate__()[:3]
    if name == "MinkowskiDistance" and vec.shape not in ((0,), (width,)):
        fail(where, f"has {shape_of(vec)} Minkowski weights for {width} features")
    if name == "SEuclideanDistance" and vec.shape != (width,):
        fail(where, f"has {shape_of(vec)} variances for {width} features")
    if name == "MahalanobisDistance" and mat.shape != (width, width):
        fail(where, f"has a {shape_of(mat)} matrix for {width} features")
    if name == "HaversineDistance" and width != 2:
        fail(where, f"measures haversine distances on {width} features (it takes 2)")


def check_neighbors(estimator: Any, where: str, holder: Any) -> None:
    """Sample counts agree across the fitted arrays; class labels name a class."""
    import numpy as np

    attributes = vars_of(estimator) or {}
    count = attributes.get("n_samples_fit_")
    if count is None:
        return  # not fitted
    for name in ("_fit_X", "_y"):
        part = attributes.get(name)
        if part is not None and getattr(part, "shape", (None,))[0] != count:
            fail(f"{where}.{name}", f"has {shape_of(part)} rows, but n_samples_fit_ is {count}")
    tree = attributes.get("_tree")
    if isinstance(tree, binary_tree_types()) and tree.__getstate__()[0].shape[0] != count:
        fail(f"{where}._tree", f"holds a different number of samples than n_samples_fit_ "
             f"({count})")
    labels, classes = attributes.get("_y"), attributes.get("classes_")
    if labels is None or classes is None or "outputs_2d_" not in attributes:
        return  # a regressor or an unsupervised model: _y holds targets, not class indexes
    labels = np.asarray(labels)
    per_output: list[Any] = list(classes) if attributes["outputs_2d_"] else [classes]
    columns = labels.reshape(len(labels), -1)
    if labels.dtype.kind not in "iu" or columns.shape[1] != len(per_output):
        fail(f"{where}._y", f"is {labels.dtype} {shape_of(labels)}, not one class index per "
             f"sample and output ({len(per_output)} outputs)")
    for j, known in enumerate(per_output):
        column = columns[:, j]
        if column.size and (column.min() < 0 or column.max() >= len(known)):
            fail(f"{where}._y", f"has a class index outside the {len(known)} classes")
