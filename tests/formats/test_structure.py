"""check_structures on tree models: every real fitted model passes, and each corruption a
hostile file could carry is refused with a message naming the check and where it failed."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import (
    AdaBoostClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    IsolationForest,
    RandomForestClassifier,
    VotingClassifier,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from app.formats import structure
from app.formats.structure import check_structures
from tests.formats.corrupt import internal_nodes, rebuilt_tree, refused, set_node, with_tree

X, Y = load_iris(return_X_y=True)


@pytest.fixture(scope="module")
def tree() -> DecisionTreeClassifier:
    return DecisionTreeClassifier(random_state=0).fit(X, Y)


@pytest.fixture(scope="module")
def forest() -> RandomForestClassifier:
    return RandomForestClassifier(n_estimators=6, random_state=0).fit(X, Y)


def categorical_rows() -> np.ndarray:
    return np.c_[np.arange(len(X)) % 5, X[:, 1:]]


VALID = {
    "decision tree": lambda: DecisionTreeRegressor(random_state=0).fit(X, X[:, 0]),
    "multi-output tree": lambda: DecisionTreeClassifier(random_state=0).fit(X, np.c_[Y, Y % 2]),
    "extra trees": lambda: ExtraTreesRegressor(n_estimators=4, random_state=0).fit(X, X[:, 0]),
    "gradient boosting (3 classes)": lambda: GradientBoostingClassifier(
        n_estimators=3, random_state=0).fit(X, Y),
    "gradient boosting regressor": lambda: GradientBoostingRegressor(
        n_estimators=3, random_state=0).fit(X, X[:, 0]),
    "hist gradient boosting": lambda: HistGradientBoostingClassifier(max_iter=3).fit(X, Y),
    "hist gradient boosting, categorical": lambda: HistGradientBoostingRegressor(
        max_iter=3, categorical_features=[0]).fit(categorical_rows(), X[:, 0]),
    "isolation forest on 2 of 4 features": lambda: IsolationForest(
        n_estimators=4, max_features=2, random_state=0).fit(X),
    "adaboost": lambda: AdaBoostClassifier(n_estimators=3, random_state=0).fit(X, Y),
    "pipeline": lambda: make_pipeline(StandardScaler(), RandomForestClassifier(
        n_estimators=3, random_state=0)).fit(X, Y),
}


@pytest.mark.parametrize("build", VALID.values(), ids=list(VALID))
def test_real_fitted_tree_models_pass(build: Any) -> None:
    check_structures(build())


def test_the_root_forest_and_tree_fixtures_pass(tree: Any, forest: Any) -> None:
    check_structures(tree)
    check_structures(forest)


def test_a_child_index_past_the_node_table_is_refused(tree: Any) -> None:
    count = tree.tree_.node_count
    bad = with_tree(tree, set_node("left_child", 0, 9000))
    message = refused(bad, "tree_: node 0's left child 9000 is outside the "
                      f"{count} nodes")
    assert message.startswith("tree_:")


def test_a_negative_child_other_than_leaf_is_refused(tree: Any) -> None:
    refused(with_tree(tree, set_node("right_child", 0, -7)), "node 0's right child -7 is outside")


def test_a_child_pointing_back_at_its_ancestor_is_refused_as_a_cycle(tree: Any) -> None:
    deep = int(internal_nodes(tree.tree_)[-1])
    refused(with_tree(tree, set_node("left_child", deep, 0)),
            f"node {deep}'s left child 0 points back", "cycle")


def test_a_node_that_is_its_own_child_is_refused(tree: Any) -> None:
    node = int(internal_nodes(tree.tree_)[1])
    refused(with_tree(tree, set_node("right_child", node, node)), "points back")


def test_a_node_shared_by_two_parents_is_refused(tree: Any) -> None:
    left = int(tree.tree_.children_left[0])
    refused(with_tree(tree, set_node("right_child", 0, left)),
            f"node {left} is the child of more than one node")


def test_a_node_with_one_child_is_refused(tree: Any) -> None:
    refused(with_tree(tree, set_node("left_child", 0, -1)), "node 0 has one child")


def test_a_split_on_a_feature_the_input_lacks_is_refused(tree: Any) -> None:
    refused(with_tree(tree, set_node("feature", 0, 4)),
            "node 0 splits on feature 4, outside the tree's 4 features")
    refused(with_tree(tree, set_node("feature", 0, -3)), "splits on feature -3")


def test_a_tree_claiming_more_features_than_its_estimator_is_refused(tree: Any) -> None:
    def wider(args: list[Any], state: dict[str, Any]) -> None:
        args[0] = 10
        state["nodes"]["feature"][0] = 8

    refused(with_tree(tree, wider), "splits 10 features, but its estimator takes 4")


def test_a_value_array_with_fewer_classes_than_the_estimator_is_refused(tree: Any) -> None:
    def truncated(args: list[Any], state: dict[str, Any]) -> None:
        args[1] = np.array([2], dtype=np.intp)
        state["values"] = np.ascontiguousarray(state["values"][:, :, :2])

    refused(with_tree(tree, truncated), "counts classes [2], but its estimator counts [3]")


def test_a_tree_without_nodes_is_refused(tree: Any) -> None:
    def emptied(args: list[Any], state: dict[str, Any]) -> None:
        state["node_count"] = 0
        state["nodes"] = state["nodes"][:0]
        state["values"] = state["values"][:0]

    refused(with_tree(tree, emptied), "has no nodes")


def test_sklearns_own_load_refuses_a_value_array_of_the_wrong_shape(tree: Any) -> None:
    """Tree.__setstate__ checks this one itself, so such a file fails to load at all."""
    def truncated(args: list[Any], state: dict[str, Any]) -> None:
        state["values"] = state["values"][:-1]

    with pytest.raises(ValueError, match="Wrong shape for value array"):
        rebuilt_tree(tree.tree_, truncated)


def test_a_corrupted_member_of_a_forest_is_named_by_its_index(forest: Any) -> None:
    bad = copy.deepcopy(forest)
    bad.estimators_[3] = with_tree(forest.estimators_[3], set_node("left_child", 0, 10**6))
    refused(bad, "estimators_[3].tree_: node 0's left child 1000000 is outside")


def test_a_forest_member_fitted_on_fewer_features_is_refused(forest: Any) -> None:
    bad = copy.deepcopy(forest)
    bad.estimators_[1] = DecisionTreeClassifier(random_state=0).fit(X[:, :2], Y)
    refused(bad, "estimators_[1]: takes 2 features, but the ensemble gives it 4")


def test_a_corrupted_tree_deep_inside_a_pipeline_and_a_voting_ensemble_is_found(
    forest: Any, tree: Any
) -> None:
    bad_forest = copy.deepcopy(forest)
    bad_forest.estimators_[2] = with_tree(forest.estimators_[2], set_node("feature", 0, 99))
    model = make_pipeline(StandardScaler(), VotingClassifier([("t", tree), ("f", forest)]))
    model.fit(X, Y).steps[1][1].estimators_[1] = bad_forest
    refused(model, "steps[1][1].estimators_[1].estimators_[2].tree_: node 0 splits on feature 99")


def test_gradient_boosting_with_more_trees_per_stage_than_outputs_is_refused() -> None:
    model = GradientBoostingClassifier(n_estimators=3, random_state=0).fit(X, Y)
    model.estimators_ = model.estimators_[:, [0, 1, 2, 0]]
    refused(model, "estimators_: has 4 trees per stage, but n_trees_per_iteration_ is 3")


def test_gradient_boosting_whose_init_predicts_fewer_classes_is_refused() -> None:
    model = GradientBoostingClassifier(n_estimators=3, random_state=0).fit(X, Y)
    model.init_ = DummyClassifier(strategy="prior").fit(X[Y < 2], Y[Y < 2])
    refused(model, "init_: predicts 2 classes, but the boosting stages predict 3")


def test_gradient_boosting_with_a_corrupted_stage_names_it() -> None:
    model = GradientBoostingRegressor(n_estimators=3, random_state=0).fit(X, X[:, 0])
    model.estimators_[2, 0] = with_tree(model.estimators_[2, 0], set_node("left_child", 0, 77))
    refused(model, "estimators_[2, 0].tree_: node 0's left child 77 is outside")


def test_an_isolation_forest_whose_feature_subsets_disagree_with_its_trees_is_refused() -> None:
    model = IsolationForest(n_estimators=3, max_features=2, random_state=0).fit(X)
    model.estimators_features_[1] = np.arange(3)
    refused(model, "estimators_[1]: takes 2 features, but the ensemble gives it 3")


def hist_model() -> HistGradientBoostingRegressor:
    """Its target follows the categorical column, so the trees split on categories."""
    rows = categorical_rows()
    return HistGradientBoostingRegressor(max_iter=3, categorical_features=[0]).fit(
        rows, rows[:, 0] % 2 * 3.0 + X[:, 2])


def predictor_nodes(model: Any) -> np.ndarray:
    nodes: np.ndarray = model._predictors[1][0].nodes
    return nodes


def first_internal(nodes: np.ndarray, categorical: bool | None = None) -> int:
    internal = nodes["is_leaf"] == 0
    if categorical is not None:
        internal &= (nodes["is_categorical"] != 0) == categorical
    return int(np.flatnonzero(internal)[0])


def test_a_hist_boosting_child_past_its_node_table_is_refused() -> None:
    model = hist_model()
    nodes = predictor_nodes(model)
    nodes["left"][0] = 5000
    refused(model, f"_predictors[1][0]: node 0's left child 5000 is outside the {len(nodes)}")


def test_a_hist_boosting_leaf_flag_cleared_on_a_leaf_is_refused() -> None:
    model = hist_model()
    nodes = predictor_nodes(model)
    leaf = int(np.flatnonzero(nodes["is_leaf"] != 0)[-1])
    nodes["is_leaf"][leaf] = 0  # its left/right are 0: the walk would loop back to the root
    refused(model, f"node {leaf}'s left child 0 points back")


def test_a_hist_boosting_split_on_a_missing_feature_is_refused() -> None:
    model = hist_model()
    nodes = predictor_nodes(model)
    node = first_internal(nodes)
    nodes["feature_idx"][node] = 40
    refused(model, f"node {node} splits on feature 40, outside the model's 4 features")


def test_a_hist_boosting_category_bitset_index_out_of_range_is_refused() -> None:
    model = hist_model()
    nodes = next(p.nodes for stage in model._predictors for p in stage
                 if ((p.nodes["is_categorical"] != 0) & (p.nodes["is_leaf"] == 0)).any())
    node = first_internal(nodes, categorical=True)
    nodes["bitset_idx"][node] = 1000
    refused(model, f"node {node} uses category bitset 1000, outside the")


def test_a_hist_boosting_categorical_split_on_a_numeric_feature_is_refused() -> None:
    model = hist_model()
    nodes = next(p.nodes for stage in model._predictors for p in stage
                 if ((p.nodes["is_categorical"] == 0) & (p.nodes["is_leaf"] == 0)).any())
    node = first_internal(nodes, categorical=False)
    nodes["is_categorical"][node] = 1
    refused(model, "by category, but the bin mapper does not mark it categorical")


def test_a_hist_boosting_bin_mapper_for_fewer_features_is_refused() -> None:
    model = hist_model()
    model._bin_mapper.is_categorical_ = model._bin_mapper.is_categorical_[:2]
    refused(model, "_bin_mapper: marks 2 features categorical or not, but the model takes 4")


def test_a_model_graph_past_the_part_limit_is_refused(
    forest: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(structure, "MAX_PARTS", 20)
    refused(forest, "more than 20 parts")


def test_a_model_that_refers_to_itself_is_walked_once(tree: Any) -> None:
    model = copy.deepcopy(tree)
    model.myself_ = [model, {"again": model}]
    check_structures(model)
