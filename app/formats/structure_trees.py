"""Structure checks for tree models: sklearn's Tree, the ensembles built of them, and
HistGradientBoosting's node tables.

Both kinds of tree are walked by compiled code from node 0, following child indices and reading
the input column a node names, with no bounds checks. A tree is safe when every internal node
names two children after itself and inside the table (so every walk ends), no node has two
parents, and every split reads a column the model's input has.
"""

from __future__ import annotations

from typing import Any

from app.formats.structure_common import array, fail, feature_count, shape_of, vars_of

TREE_LEAF = -1  # sklearn.tree._tree.TREE_LEAF
BITSET_WORDS = 8  # 256 categories / 32 bits: the width of HistGradientBoosting's bitsets


def check_links(where: str, left: Any, right: Any, leaf: Any) -> None:
    """Internal nodes point forward, inside the table, and no node is reached twice."""
    import numpy as np

    count = len(leaf)
    nodes = np.arange(count)
    internal = ~leaf
    for side, child in (("left", left), ("right", right)):
        bad = internal & ((child <= nodes) | (child >= count))
        if bad.any():
            k = int(np.argmax(bad))
            target = int(child[k])
            if 0 <= target < count:
                fail(where, f"node {k}'s {side} child {target} points back to an earlier node "
                     "(a cycle: children come after their parent)")
            fail(where, f"node {k}'s {side} child {target} is outside the {count} nodes")
    children = np.concatenate([left[internal], right[internal]])
    reached = np.bincount(children, minlength=count)
    if count and reached.max() > 1:
        fail(where, f"node {int(np.argmax(reached))} is the child of more than one node")


def check_tree(tree: Any, where: str, holder: Any) -> None:
    """An sklearn.tree._tree.Tree, against the estimator holding it when there is one."""
    import numpy as np

    count = int(tree.node_count)
    if count < 1:
        fail(where, "has no nodes (a tree needs at least its root)")
    left = np.asarray(tree.children_left, dtype=np.int64)
    right = np.asarray(tree.children_right, dtype=np.int64)
    half = (left == TREE_LEAF) != (right == TREE_LEAF)
    if half.any():
        fail(where, f"node {int(np.argmax(half))} has one child (a node has two or none)")
    leaf = left == TREE_LEAF
    check_links(where, left, right, leaf)
    n_features = int(tree.n_features)
    feature = np.asarray(tree.feature)
    bad = ~leaf & ((feature < 0) | (feature >= n_features))
    if bad.any():
        k = int(np.argmax(bad))
        fail(where, f"node {k} splits on feature {int(feature[k])}, outside the tree's "
             f"{n_features} features")
    n_outputs = int(tree.n_outputs)
    n_classes = np.asarray(tree.n_classes)
    if n_outputs < 1 or n_classes.shape != (n_outputs,) or (n_classes < 1).any():
        fail(where, f"has {n_outputs} outputs but class counts {n_classes.tolist()[:10]}")
    expected = (count, n_outputs, int(n_classes.max()))
    value = tree.value
    if value.shape != expected or value.dtype != np.float64:
        fail(where, f"has a value array of shape {value.shape}, not {expected}")
    for name in ("threshold", "missing_go_to_left"):
        part = getattr(tree, name)
        if part.shape != (count,):
            fail(where, f"has a {name} array of shape {part.shape}, not ({count},)")
    if tree.threshold.dtype != np.float64:
        fail(where, f"has {tree.threshold.dtype} thresholds, not float64")
    _check_tree_owner(tree, where, vars_of(holder) or {}, n_features, n_classes)


def _check_tree_owner(
    tree: Any, where: str, owner: dict[str, Any], n_features: int, n_classes: Any
) -> None:
    """The decision tree estimator's own counts agree with its Tree's."""
    import numpy as np

    declared = owner.get("n_features_in_")
    if declared is not None and declared != n_features:
        fail(where, f"splits {n_features} features, but its estimator takes {declared} "
             "(n_features_in_)")
    outputs = owner.get("n_outputs_")
    if outputs is not None and outputs != len(n_classes):
        fail(where, f"has {len(n_classes)} outputs, but its estimator has {outputs}")
    classes = owner.get("n_classes_")
    if classes is not None and not np.array_equal(np.atleast_1d(classes), n_classes):
        fail(where, f"counts classes {n_classes.tolist()[:10]}, but its estimator counts "
             f"{np.atleast_1d(classes).tolist()[:10]}")


def check_ensemble(ensemble: Any, where: str, holder: Any) -> None:
    """Tree ensembles hand their (checked) input straight to each member's compiled code, so
    every member must take as many features as the ensemble gives it."""
    import numpy as np
    from sklearn.ensemble._bagging import BaseBagging
    from sklearn.ensemble._forest import BaseForest
    from sklearn.ensemble._gb import BaseGradientBoosting
    from sklearn.ensemble._weight_boosting import BaseWeightBoosting

    attributes = vars_of(ensemble) or {}
    n_features = feature_count(ensemble)
    members = attributes.get("estimators_")
    if n_features is None or members is None:
        return
    if isinstance(ensemble, BaseGradientBoosting):
        members = _boosting_members(ensemble, where, attributes, members)
    elif not isinstance(ensemble, BaseForest | BaseBagging | BaseWeightBoosting):
        return
    subsets = attributes.get("estimators_features_")
    if isinstance(ensemble, BaseBagging) and subsets is not None:
        if len(subsets) != len(members):
            fail(where, f"has {len(members)} members but {len(subsets)} feature subsets")
        widths = [len(np.asarray(s)) for s in subsets]
    else:
        widths = [n_features] * len(members)
    for i, (member, width) in enumerate(zip(members, widths, strict=True)):
        own = vars_of(member) or {}
        tree = own.get("tree_")
        takes = int(tree.n_features) if tree is not None else own.get("n_features_in_")
        if takes is not None and takes != width:
            fail(f"{where}.estimators_[{i}]", f"takes {takes} features, but the ensemble "
                 f"gives it {width}")


def _boosting_members(ensemble: Any, where: str, attributes: dict[str, Any], members: Any) -> Any:
    """Gradient boosting adds stage [i, k]'s prediction into column k of an array as wide as
    n_trees_per_iteration_, and starts it from init_'s prediction."""
    import numpy as np
    from sklearn.tree._tree import Tree

    members = array(members, f"{where}.estimators_", "estimators_", ndim=2, kind="O")
    width = attributes.get("n_trees_per_iteration_")
    if members.shape[1] != width:
        fail(f"{where}.estimators_", f"has {members.shape[1]} trees per stage, but "
             f"n_trees_per_iteration_ is {width}")
    for index in np.ndindex(members.shape):
        if not isinstance((vars_of(members[index]) or {}).get("tree_"), Tree):
            fail(f"{where}.estimators_[{index[0]}, {index[1]}]", "is not a fitted decision tree")
    init = attributes.get("init_")
    init_attributes = vars_of(init) or {}
    init_classes = init_attributes.get("classes_")
    if width > 1 and init_classes is not None and len(init_classes) != width:
        fail(f"{where}.init_", f"predicts {len(init_classes)} classes, but the boosting "
             f"stages predict {width}")
    init_outputs = init_attributes.get("n_outputs_")
    if init_classes is None and init_outputs is not None and init_outputs != width:
        fail(f"{where}.init_", f"predicts {init_outputs} outputs, but the boosting stages "
             f"predict {width}")
    return members.ravel()


def check_hist_boosting(booster: Any, where: str, holder: Any) -> None:
    """HistGradientBoosting's TreePredictor node tables and the bin mapper beside them."""
    attributes = vars_of(booster) or {}
    n_features = feature_count(booster)
    predictors = attributes.get("_predictors")
    mapper = attributes.get("_bin_mapper")
    if n_features is None or predictors is None or mapper is None:
        return  # not fitted: predict refuses in Python
    categorical = _check_bin_mapper(mapper, f"{where}._bin_mapper", n_features)
    width = attributes.get("n_trees_per_iteration_")
    for i, stage in enumerate(predictors):
        if len(stage) != width:
            fail(f"{where}._predictors[{i}]", f"has {len(stage)} trees, but "
                 f"n_trees_per_iteration_ is {width}")
        for k, predictor in enumerate(stage):
            _check_predictor(predictor, f"{where}._predictors[{i}][{k}]", n_features,
                             categorical)


def _check_bin_mapper(mapper: Any, where: str, n_features: int) -> Any:
    """The mapper's per-feature arrays (predict builds its category bitsets from them)."""
    import numpy as np

    attributes = vars_of(mapper) or {}
    categorical = array(attributes.get("is_categorical_"), where, "is_categorical_", ndim=1,
                        kind="iub")
    if categorical.shape != (n_features,):
        fail(where, f"marks {shape_of(categorical)} features categorical or not, but the "
             f"model takes {n_features}")
    thresholds = attributes.get("bin_thresholds_")
    if not isinstance(thresholds, list) or len(thresholds) != n_features:
        fail(where, f"has bin thresholds for {shape_of(thresholds)} features, not {n_features}")
    for f in np.flatnonzero(categorical):
        known = np.asarray(thresholds[f])
        if known.size and (known.min() < 0 or known.max() > 255):
            fail(where, f"lists categories of feature {f} outside 0..255")
    bins = attributes.get("n_bins_non_missing_")
    if bins is not None and getattr(bins, "shape", None) != (n_features,):
        fail(where, f"has n_bins_non_missing_ of shape {shape_of(bins)}, not ({n_features},)")
    missing = attributes.get("missing_values_bin_idx_")
    if missing is not None and not 0 <= int(missing) <= 255:
        fail(where, f"puts missing values in bin {missing}, outside 0..255")
    return categorical.astype(bool)


def _check_predictor(predictor: Any, where: str, n_features: int, categorical: Any) -> None:
    import numpy as np
    from sklearn.ensemble._hist_gradient_boosting.common import (
        PREDICTOR_RECORD_DTYPE,
        X_BITSET_INNER_DTYPE,
    )

    attributes = vars_of(predictor) or {}
    nodes = attributes.get("nodes")
    if not isinstance(nodes, np.ndarray) or nodes.dtype != PREDICTOR_RECORD_DTYPE \
            or nodes.ndim != 1 or len(nodes) < 1:
        fail(where, f"has a node table of {type(nodes).__name__} {shape_of(nodes)}, not a "
             "non-empty array of scikit-learn's predictor records")
    bitsets = []
    for name in ("raw_left_cat_bitsets", "binned_left_cat_bitsets"):
        bits = attributes.get(name)
        if not isinstance(bits, np.ndarray) or bits.dtype != X_BITSET_INNER_DTYPE \
                or bits.ndim != 2 or bits.shape[1] != BITSET_WORDS:
            fail(where, f"has {name} of {shape_of(bits)}, not n x {BITSET_WORDS} uint32")
        bitsets.append(len(bits))
    leaf = nodes["is_leaf"] != 0
    check_links(where, nodes["left"].astype(np.int64), nodes["right"].astype(np.int64), leaf)
    feature = nodes["feature_idx"]
    bad = ~leaf & ((feature < 0) | (feature >= n_features))
    if bad.any():
        k = int(np.argmax(bad))
        fail(where, f"node {k} splits on feature {int(feature[k])}, outside the model's "
             f"{n_features} features")
    split = ~leaf & (nodes["is_categorical"] != 0)
    bad = split & (nodes["bitset_idx"] >= min(bitsets))
    if bad.any():
        k = int(np.argmax(bad))
        fail(where, f"node {k} uses category bitset {int(nodes['bitset_idx'][k])}, outside "
             f"the {min(bitsets)} bitsets")
    bad = split & ~categorical[np.where(split, feature, 0)]
    if bad.any():
        k = int(np.argmax(bad))
        fail(where, f"node {k} splits feature {int(feature[k])} by category, but the bin "
             "mapper does not mark it categorical")
