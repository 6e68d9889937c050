"""check_structures on neighbours, libsvm, sparse matrices and per-feature arrays: real fitted
models pass, corrupted ones are refused naming the check."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.cluster import KMeans
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression, SGDClassifier
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import (
    KernelDensity,
    KNeighborsClassifier,
    KNeighborsRegressor,
    RadiusNeighborsClassifier,
)
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from sklearn.svm import SVC, SVR, LinearSVC, NuSVC, NuSVR, OneClassSVM

from app.formats.structure import check_structures
from tests.formats.corrupt import rebuilt_binary_tree, refused
from tests.models import iris_model

X, Y = load_iris(return_X_y=True)
KERNEL = X @ X.T

VALID = {
    "knn kd_tree": lambda: KNeighborsClassifier(algorithm="kd_tree").fit(X, Y),
    "knn ball_tree": lambda: KNeighborsClassifier(algorithm="ball_tree").fit(X, Y),
    "knn brute": lambda: KNeighborsClassifier(algorithm="brute").fit(X, Y),
    "knn two outputs": lambda: KNeighborsClassifier().fit(X, np.c_[Y, Y % 2]),
    "knn regressor": lambda: KNeighborsRegressor(algorithm="kd_tree").fit(X, X[:, 0]),
    "radius neighbours": lambda: RadiusNeighborsClassifier(radius=3.0).fit(X, Y),
    "kernel density": lambda: KernelDensity().fit(X),
    "knn mahalanobis": lambda: KNeighborsClassifier(
        algorithm="ball_tree", metric="mahalanobis", metric_params={"VI": np.eye(4)}).fit(X, Y),
    "knn seuclidean": lambda: KNeighborsClassifier(
        algorithm="ball_tree", metric="seuclidean", metric_params={"V": np.ones(4)}).fit(X, Y),
    "knn weighted minkowski": lambda: KNeighborsClassifier(
        algorithm="ball_tree", p=3, metric_params={"w": np.ones(4)}).fit(X, Y),
    "svc": lambda: SVC().fit(X, Y),
    "nusvc": lambda: NuSVC().fit(X, Y),
    "svr": lambda: SVR().fit(X, X[:, 0]),
    "nusvr": lambda: NuSVR().fit(X, X[:, 0]),
    "one-class svm": lambda: OneClassSVM().fit(X),
    "svc precomputed": lambda: SVC(kernel="precomputed").fit(KERNEL, Y),
    "svc sparse": lambda: SVC().fit(sp.csr_matrix(X), Y),
    "linear svc": lambda: LinearSVC().fit(X, Y),
    "iris model (tests/models.py)": iris_model,
    "two-target linear regression": lambda: LinearRegression().fit(X, X[:, :2]),
    "sparse coef": lambda: SGDClassifier(random_state=0).fit(X, Y).sparsify(),
    "pipeline": lambda: make_pipeline(StandardScaler(), KMeans(3, n_init=1, random_state=0),
                                      LogisticRegression(max_iter=300)).fit(X, Y),
    "column transformer": lambda: ColumnTransformer(
        [("a", StandardScaler(), [0, 1]), ("b", MinMaxScaler(), [2, 3])]).fit(X),
    "naive bayes": lambda: GaussianNB().fit(X, Y),
    "mlp": lambda: MLPRegressor(hidden_layer_sizes=(3,), max_iter=20).fit(X, X[:, 0]),
}


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("build", VALID.values(), ids=list(VALID))
def test_real_fitted_models_pass(build: Any) -> None:
    check_structures(build())


@pytest.fixture
def knn() -> KNeighborsClassifier:
    return KNeighborsClassifier(algorithm="kd_tree").fit(X, Y)


def with_tree_state(knn: KNeighborsClassifier, edit: Any) -> KNeighborsClassifier:
    bad = copy.deepcopy(knn)
    bad._tree = rebuilt_binary_tree(knn._tree, edit)
    return bad


def test_a_kd_tree_index_array_that_is_not_a_permutation_is_refused(knn: Any) -> None:
    def repeat(state: list[Any]) -> None:
        state[1][0] = state[1][1]

    refused(with_tree_state(knn, repeat),
            "_tree: has an index array that is not a permutation of its 150 samples")


def test_a_kd_tree_index_past_the_samples_is_refused(knn: Any) -> None:
    def beyond(state: list[Any]) -> None:
        state[1][5] = 10**9

    refused(with_tree_state(knn, beyond), "not a permutation")


def test_a_kd_tree_node_covering_samples_past_the_end_is_refused(knn: Any) -> None:
    def overrun(state: list[Any]) -> None:
        state[2]["idx_end"][1] = 4000

    refused(with_tree_state(knn, overrun), "node 1 covers samples 0..4000, outside 0..150")


def test_a_kd_tree_inner_node_without_children_is_refused(knn: Any) -> None:
    def unleafed(state: list[Any]) -> None:
        state[2]["is_leaf"][-1] = 0

    last = len(knn._tree.__getstate__()[2]) - 1
    refused(with_tree_state(knn, unleafed), f"node {last} is not a leaf but has no children")


def test_a_kd_tree_whose_node_count_disagrees_with_its_levels_is_refused(knn: Any) -> None:
    def deeper(state: list[Any]) -> None:
        state[5] += 1

    refused(with_tree_state(knn, deeper), "has 7 nodes in 4 levels")


def test_kd_tree_bounds_of_the_wrong_shape_are_refused(knn: Any) -> None:
    def narrow(state: list[Any]) -> None:
        state[3] = np.ascontiguousarray(state[3][:, :, :2])

    refused(with_tree_state(knn, narrow), "has node bounds of 2x7x2, not 2x7x4")


def test_a_mahalanobis_matrix_smaller_than_the_data_is_refused() -> None:
    from sklearn.metrics import DistanceMetric

    model = KNeighborsClassifier(algorithm="ball_tree", metric="mahalanobis",
                                 metric_params={"VI": np.eye(4)}).fit(X, Y)

    def small(state: list[Any]) -> None:
        state[11] = DistanceMetric.get_metric("mahalanobis", VI=np.eye(2))

    bad = copy.deepcopy(model)
    bad._tree = rebuilt_binary_tree(model._tree, small)
    refused(bad, "_tree.dist_metric: has a 2x2 matrix for 4 features")


def test_a_neighbour_label_past_the_classes_is_refused() -> None:
    for model in (KNeighborsClassifier(algorithm="brute").fit(X, Y),
                  RadiusNeighborsClassifier(radius=3.0).fit(X, Y)):
        model._y = model._y.copy()
        model._y[7] = 3
        refused(model, "_y: has a class index outside the 3 classes")


def test_neighbour_labels_for_fewer_samples_than_fitted_are_refused() -> None:
    model = KNeighborsClassifier(algorithm="brute").fit(X, Y)
    model._y = model._y[:100]
    refused(model, "_y: has 100 rows, but n_samples_fit_ is 150")


def test_svc_support_counts_that_do_not_add_up_are_refused() -> None:
    model = SVC().fit(X, Y)
    model._n_support = model._n_support.copy()
    model._n_support[0] += 5
    refused(model, "counts support vectors per class", "do not add up to its")


def test_svc_dual_coefficients_of_the_wrong_shape_are_refused() -> None:
    model = NuSVC().fit(X, Y)
    model._dual_coef_ = np.ascontiguousarray(model._dual_coef_[:, :10])
    refused(model, "_dual_coef_: has shape 2x10")


def test_svr_intercept_and_platt_arrays_of_the_wrong_length_are_refused() -> None:
    model = SVR().fit(X, X[:, 0])
    model._intercept_ = np.zeros(3)
    refused(model, "_intercept_: has shape 3, not (1,)")
    model = SVC().fit(X, Y)
    model._probA, model._probB = np.zeros(3), np.zeros(1)
    refused(model, "Platt scaling arrays of 3, 1")


def test_support_vectors_fewer_than_the_support_are_refused() -> None:
    model = OneClassSVM().fit(X)
    model.support_vectors_ = np.ascontiguousarray(model.support_vectors_[:3])
    refused(model, "support_vectors_: has shape 3x4, not one row for each")


def test_a_precomputed_kernel_support_index_past_the_training_samples_is_refused() -> None:
    model = SVC(kernel="precomputed").fit(KERNEL, Y)
    model.support_ = model.support_.copy()
    model.support_[0] = 150
    refused(model, "support_: names a training sample outside the 150")


def test_a_sparse_support_vector_matrix_with_an_index_past_its_columns_is_refused() -> None:
    model = SVC().fit(sp.csr_matrix(X), Y)
    model.support_vectors_.indices[0] = 50
    refused(model, "support_vectors_: is a sparse matrix whose indices are inconsistent")


def test_a_sparse_coefficient_matrix_with_broken_index_pointers_is_refused() -> None:
    model = SGDClassifier(random_state=0).fit(X, Y).sparsify()
    model.coef_.indptr[1] = 10**6
    refused(model, "coef_: is a sparse matrix whose indices are inconsistent")


def test_a_coefficient_array_narrower_than_the_input_is_refused() -> None:
    model = iris_model()
    model.coef_ = np.ascontiguousarray(model.coef_[:, :3])
    refused(model, "coef_: has 3 columns, but the estimator takes 4 features")


def test_cluster_centres_inside_a_pipeline_are_checked_with_their_path() -> None:
    model = make_pipeline(StandardScaler(), KMeans(3, n_init=1, random_state=0),
                          LogisticRegression(max_iter=300)).fit(X, Y)
    model.steps[1][1].cluster_centers_ = np.zeros((3, 9))
    refused(model, "steps[1][1].cluster_centers_: has 9 columns, but the estimator takes 4")


def test_a_dict_of_models_is_walked() -> None:
    model = iris_model()
    bad = iris_model()
    bad.coef_ = np.zeros((3, 2))
    model.extras_ = {"backup": (bad,)}
    refused(model, "extras_['backup'][0].coef_: has 2 columns")


def test_minkowski_weights_for_fewer_features_are_refused() -> None:
    from sklearn.metrics import DistanceMetric

    model = KNeighborsClassifier(algorithm="ball_tree", p=3,
                                 metric_params={"w": np.ones(4)}).fit(X, Y)

    def short(state: list[Any]) -> None:
        state[11] = DistanceMetric.get_metric("minkowski", p=3, w=np.ones(2))

    bad = copy.deepcopy(model)
    bad._tree = rebuilt_binary_tree(model._tree, short)
    refused(bad, "_tree.dist_metric: has 2 Minkowski weights for 4 features")
