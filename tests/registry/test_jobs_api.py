"""POST /jobs refuses every bad request with a message naming the problem, and leaves nothing."""

from __future__ import annotations

import io
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.registry.conftest import AUTH, error_code
from tests.registry.jobdata import classification_csv, train_body

MIXED_CSV = b"age,city,income,label\n30,Oslo,,yes\n40,Rome,5.5,no\n50,Oslo,6,yes\n60,Rome,7,yes\n"


def upload(client: FlaskClient, data: bytes) -> str:
    response = client.post("/api/v1/datasets", data={"file": (io.BytesIO(data), "d.csv")},
                           content_type="multipart/form-data", headers=AUTH)
    assert response.status_code == 201, response.get_json()
    return str(response.get_json()["id"])


@pytest.fixture
def dataset(client: FlaskClient) -> str:
    return upload(client, classification_csv(rows=40))


def submit(client: FlaskClient, body: Any, headers: dict[str, str] | None = None) -> Any:
    return client.post("/api/v1/jobs", json=body, headers=AUTH if headers is None else headers)


def refused(response: Any, status: int, code: str) -> str:
    assert response.status_code == status, response.get_json()
    assert error_code(response) == code
    return str(response.get_json()["error"]["message"])


def test_hostile_estimators_are_400(client: FlaskClient, dataset: str) -> None:
    for path in ("os.system", "subprocess.Popen", "sklearn.utils._testing.SkipTest",
                 "builtins.eval", "sklearn.pipeline.Pipeline", "sklearn"):
        message = refused(submit(client, train_body(dataset, estimator=path)), 400,
                          "estimator_not_allowed")
        assert message.startswith(f"Estimator {path!r} is not allowed. Name one of these "
                                  "scikit-learn classes: sklearn.ensemble.AdaBoostClassifier,")
    assert client.get("/api/v1/jobs").get_json() == {"jobs": [], "next_page_token": None}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"n_estimators": -5}, "Invalid params for RandomForestClassifier: The 'n_estimators' "
                               "parameter of RandomForestClassifier must be an int in the range "
                               "[1, inf). Got -5 instead."),
        ({"min_samples_split": 0.0}, "Invalid params for RandomForestClassifier: The "
                                     "'min_samples_split' parameter of RandomForestClassifier "
                                     "must be an int in the range [2, inf) or a float in the "
                                     "range (0.0, 1.0]. Got 0.0 instead."),
        ({"max_depth": {"__import__": "os"}}, "Param 'max_depth' must be a string, number, "
                                              "boolean, null or list."),
        ({"n_jobs": -1}, "Param 'n_jobs' must be 1 or null: the pool runs each job in one "
                         "process and bounds parallelism with the pool_size setting."),
        ({"n_estimators": 20000}, "With n_estimators=20000, the trained RandomForestClassifier "
                                  "would be larger than ModelDepot stores and serves (a skops "
                                  "file of at most 50000 parts). Use n_estimators of at most "
                                  "9990."),
    ],
    ids=["negative", "out-of-range", "object", "n_jobs", "too-big-to-store"],
)
def test_invalid_params_are_422(client: FlaskClient, dataset: str, params: dict[str, Any],
                                message: str) -> None:
    response = submit(client, train_body(dataset, params=params))
    assert refused(response, 422, "invalid_params") == message


def test_unknown_param_names_what_the_estimator_takes(client: FlaskClient, dataset: str) -> None:
    response = submit(client, train_body(dataset, params={"n_estimatorz": 5}))
    message = refused(response, 422, "invalid_params")
    assert message.startswith("RandomForestClassifier has no param(s) 'n_estimatorz'. It takes: "
                              "bootstrap, ccp_alpha,")


@pytest.mark.parametrize(
    ("change", "status", "code", "message"),
    [
        ({"epochs": 3}, 422, "invalid_fields", "Unknown field 'epochs'."),
        ({"target": None}, 422, "invalid_fields", "Field 'target': Input should be a valid "
                                                  "string."),
        ({"test_size": 1.5}, 422, "invalid_fields", "Field 'test_size': Input should be less "
                                                    "than 1."),
        ({"kind": "shell"}, 422, "invalid_kind", "Field 'kind' must be one of: evaluate, "
                                                 "train (not 'shell')."),
        ({"model": "../etc"}, 400, "invalid_name", "Invalid model name '../etc': use 1 to 128 "
                                                   "ASCII letters, digits, '.', '_' or '-', "
                                                   "starting with a letter or digit."),
        ({"alias": "123"}, 400, "invalid_name", "Invalid alias '123': an alias cannot be all "
                                                "digits or 'latest'."),
        ({"target": "nope"}, 422, "invalid_columns", "The dataset has no column 'nope' to use as "
                                                     "target. Its columns: f0, f1, f2, f3, "
                                                     "label."),
        ({"features": ["f0", "f0"]}, 422, "invalid_columns", "features lists a column twice."),
        ({"features": ["f0", "label"]}, 422, "invalid_columns", "The target 'label' cannot also "
                                                                "be a feature."),
        ({"features": ["zz"]}, 422, "invalid_columns", "The dataset has no column 'zz'."),
        ({"test_size": 0.99}, 422, "invalid_split", "With 40 rows, test_size 0.99 leaves 0 "
                                                    "row(s) to fit and 40 to evaluate; each needs "
                                                    "at least 2."),
        ({"estimator": "sklearn.linear_model.Ridge", "target": "f0", "params": {}},
         202, "", ""),
    ],
    ids=["unknown-field", "null-target", "test-size", "kind", "model-name", "alias",
         "no-target", "dup-feature", "target-feature", "no-feature", "split", "valid"],
)
def test_bad_fields(client: FlaskClient, dataset: str, change: dict[str, Any], status: int,
                    code: str, message: str) -> None:
    response = submit(client, train_body(dataset, **change))
    if status == 202:  # the control: a body without a fault is accepted
        assert response.status_code == 202, response.get_json()
        return
    assert refused(response, status, code) == message


def test_columns_must_suit_the_task(client: FlaskClient) -> None:
    mixed = upload(client, MIXED_CSV)
    body = train_body(mixed, features=["age", "city"])
    assert refused(submit(client, body), 422, "invalid_columns") == (
        "Feature 'city' holds text, not numbers. Leave it out with 'features', or encode it as "
        "numbers before uploading.")
    body = train_body(mixed, features=["income"])
    assert refused(submit(client, body), 422, "invalid_columns") == (
        "Feature 'income' has 1 missing value(s). Fill or drop them before uploading, or leave "
        "the column out with 'features'.")
    body = train_body(mixed, features=["age"], estimator="sklearn.linear_model.Ridge")
    assert refused(submit(client, body), 422, "invalid_columns") == (
        "The target 'label' holds text; a regressor predicts numbers. Choose a classifier, or "
        "another target.")
    single = upload(client, b"x,label\n1,a\n2,a\n3,a\n4,a\n5,a\n")
    assert refused(submit(client, train_body(single)), 422, "invalid_columns") == (
        "The target 'label' has a single value; a classifier needs two classes or more.")
    rows = "".join(f"{i},{i * 0.37:.3f}\n" for i in range(1200)).encode()
    continuous = upload(client, b"x,label\n" + rows)
    assert refused(submit(client, train_body(continuous)), 422, "invalid_columns") == (
        "The target 'label' has more than 1000 distinct values, which is a regression target; "
        "choose a regressor.")


def test_unknown_dataset_is_404(client: FlaskClient) -> None:
    message = refused(submit(client, train_body("e" * 64)), 404, "not_found")
    assert message == (f"No dataset with id {'e' * 64!r}. Upload the CSV with POST "
                       "/api/v1/datasets (or `modeldepot datasets push`) to get its id.")


def test_transport_refusals(client: FlaskClient, dataset: str) -> None:
    body = train_body(dataset)
    assert refused(submit(client, body, headers={}), 401, "unauthorized").startswith(
        "This request needs the API token")
    response = client.post("/api/v1/jobs", data="kind=train", headers=AUTH,
                           content_type="application/x-www-form-urlencoded")
    assert refused(response, 415, "unsupported_media_type") == (
        "This route takes application/json, not application/x-www-form-urlencoded.")
    response = client.post("/api/v1/jobs", data="{", headers=AUTH,
                           content_type="application/json")
    assert refused(response, 400, "invalid_json").startswith("The body is not valid JSON:")
    response = client.post("/api/v1/jobs", data="[]", headers=AUTH,
                           content_type="application/json")
    assert refused(response, 422, "unprocessable") == "The body must be a JSON object."
    assert client.get("/api/v1/jobs").get_json()["jobs"] == []


def test_job_reads_refuse_bad_input(client: FlaskClient) -> None:
    assert refused(client.get("/api/v1/jobs?status=done"), 400, "bad_request") == (
        "status must be one of queued, running, succeeded, failed, cancelled.")
    assert refused(client.get("/api/v1/jobs?limit=0"), 400, "bad_request") == (
        "limit must be between 1 and 1000.")
    missing = "0" * 32
    assert refused(client.get(f"/api/v1/jobs/{missing}"), 404, "not_found") == (
        f"No job with id {missing!r}.")
    assert refused(client.get(f"/api/v1/jobs/{missing}/log"), 404, "not_found")
    assert refused(client.delete(f"/api/v1/jobs/{missing}", headers=AUTH), 404, "not_found")
    assert refused(client.get(f"/api/v1/jobs/{missing}/log?after=x"), 400, "bad_request") == (
        "Query parameter after must be a whole number.")


def test_openapi_lists_the_routes(client: FlaskClient) -> None:
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    assert set(paths["/api/v1/jobs"]) == {"get", "post"}
    assert set(paths["/api/v1/jobs/{job_id}"]) == {"get", "delete"}
    assert "/api/v1/jobs/{job_id}/log" in paths
    assert set(paths["/api/v1/datasets/{dataset_id}"]) == {"get", "delete"}
    assert "202" in paths["/api/v1/jobs"]["post"]["responses"]
