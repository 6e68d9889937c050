"""Datasets, training and jobs pages over the registry's real job runner (a spawn process pool):
every failed action shows the API's own message, and a job's page tells how it went."""

from __future__ import annotations

import io
import re

import pytest
from flask.testing import FlaskClient

from app.config import Settings
from app.registry.app import create_app
from app.store import Store
from tests.conftest import TOKEN
from tests.dashboard.conftest import alerts, login, notices, shut_down
from tests.registry.jobdata import FINAL, RF, classification_csv, wait_until

CSV = classification_csv(rows=60)


def upload_csv(client: FlaskClient, csrf: str, data: bytes, name: str = "churn",
               filename: str = "churn.csv") -> object:
    return client.post(f"/datasets?csrf={csrf}", content_type="multipart/form-data",
                       data={"name": name, "file": (io.BytesIO(data), filename)})


@pytest.fixture
def dataset(client: FlaskClient) -> str:
    csrf = login(client)
    r = upload_csv(client, csrf, CSV)
    assert r.status_code == 303, alerts(r.text)
    return str(r.location.rsplit("/", 1)[1])


def train_form(csrf: str, **overrides: str) -> dict[str, str]:
    form = {"csrf": csrf, "model": "churn", "target": "label", "estimator": RF,
            "params": '{"n_estimators": 5}', "test_size": "0.25", "alias": "", "description": ""}
    form.update(overrides)
    return form


def test_dataset_upload_list_and_preview(client: FlaskClient, dataset: str) -> None:
    page = client.get(f"/datasets/{dataset}").text
    assert notices(page) == ["Stored dataset churn: 60 rows, 5 columns."]
    assert '<th scope="row">label</th><td>integer</td>' in page
    first_row = CSV.decode().splitlines()[1].split(",")
    assert "".join(f"<td>{cell}</td>" for cell in first_row) in page
    assert page.count("<tr><td>") == 20  # the preview's first rows, not the whole file
    assert f"/train?dataset={dataset}" in page
    listing = client.get("/datasets").text
    assert ">churn</a>" in listing and "<td>60</td>" in listing
    csrf = login(client)
    r = upload_csv(client, csrf, CSV, name="again")
    assert notices(client.get(r.location).text) == [
        "This file was already here as dataset churn: 60 rows, 5 columns."]


@pytest.mark.parametrize("data,status,message", [
    (b"", 422, "The CSV file is empty"),
    (b"a,b\n1\n", 422, "Line 2 has 1 field, but the header names 2 columns."),
    (b"1,2\n3,4\n", 422, "has no header"),
    (b"a,b\n\xff\xfe,1\n", 422, "Line 2 is not valid UTF-8"),
])
def test_bad_csvs_show_the_apis_message(client: FlaskClient, data: bytes, status: int,
                                        message: str) -> None:
    csrf = login(client)
    r = upload_csv(client, csrf, data)
    api = client.post("/api/v1/datasets", content_type="multipart/form-data",
                      data={"file": (io.BytesIO(data), "d.csv")},
                      headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == api.status_code == status
    assert message in alerts(r.text)[0]
    assert alerts(r.text)[0] == f"That did not work. {api.get_json()['error']['message']}"


def test_dataset_past_the_size_limit(settings: Settings, store: Store) -> None:
    application = create_app(settings.replace(max_dataset_bytes=100), store)
    client = application.test_client()
    csrf = login(client)
    r = upload_csv(client, csrf, CSV)
    assert r.status_code == 413 and "larger than the limit of 100 bytes" in alerts(r.text)[0]
    shut_down(application, close_store=False)


def test_unknown_dataset_pages(client: FlaskClient) -> None:
    r = client.get("/datasets/abc")
    assert r.status_code == 404 and "No dataset with id 'abc'" in alerts(r.text)[0]
    assert client.get("/train?dataset=" + "0" * 64).status_code == 404


def test_delete_dataset(client: FlaskClient, dataset: str, store: Store) -> None:
    csrf = login(client)
    r = client.post(f"/datasets/{dataset}/delete", data={"csrf": csrf})
    assert notices(client.get(r.location).text) == ["Dataset churn deleted."]
    assert store.datasets.list_datasets() == []
    r = client.post(f"/datasets/{dataset}/delete", data={"csrf": csrf})
    assert "No dataset with id" in notices(client.get(r.location).text)[0]


def test_train_form_offers_the_columns_and_the_allow_list(client: FlaskClient,
                                                          dataset: str) -> None:
    page = client.get("/train").text
    assert "1. Dataset" in page and "2. What to learn" not in page  # choose a dataset first
    page = client.get(f"/train?dataset={dataset}").text
    for column in ("f0", "f1", "f2", "f3", "label"):
        assert f'<option value="{column}"' in page
    assert '<option value="label" selected>' in page  # the last column, as CSVs usually go
    assert f'<option value="{RF}" selected>' in page
    assert "os.system" not in page


def test_train_page_without_datasets(client: FlaskClient) -> None:
    assert "No datasets yet" in client.get("/train").text


@pytest.mark.parametrize("overrides,status,message", [
    ({"estimator": "os.system"}, 400, "Estimator 'os.system' is not allowed."),
    ({"params": '{"n_estimators": -1}'}, 422, "Invalid params for RandomForestClassifier"),
    ({"params": "{oops"}, 400, "Params must be a JSON object"),
    ({"params": "[1]"}, 422, "params"),
    ({"test_size": "abc"}, 422, "Field 'test_size'"),
    ({"test_size": "2"}, 422, "Field 'test_size'"),
    ({"target": "nope"}, 422, "The dataset has no column 'nope'"),
    ({"model": "a b"}, 400, "Invalid model name"),
    ({"alias": "latest"}, 400, "alias"),
])
def test_bad_training_requests_show_the_apis_message(client: FlaskClient, dataset: str,
                                                     store: Store, overrides: dict[str, str],
                                                     status: int, message: str) -> None:
    csrf = login(client)
    r = client.post(f"/train?dataset={dataset}", data=train_form(csrf, **overrides))
    assert r.status_code == status, alerts(r.text)
    assert message in alerts(r.text)[0]
    assert store.jobs.list_jobs()[0] == []  # nothing queued
    for value in overrides.values():
        assert value.replace('"', "&#34;") in r.text or value.replace('"', "&quot;") in r.text


def test_train_without_a_dataset(client: FlaskClient) -> None:
    csrf = login(client)
    r = client.post("/train", data=train_form(csrf))
    assert r.status_code == 400 and "Choose a dataset first." in alerts(r.text)[0]


def test_a_job_runs_to_a_new_version(client: FlaskClient, dataset: str, store: Store) -> None:
    csrf = login(client)
    r = client.post(f"/train?dataset={dataset}", data=train_form(csrf, alias="production"))
    assert r.status_code == 303
    job_id = r.location.rsplit("/", 1)[1]
    page = client.get(r.location).text
    assert notices(page) == ["Training job queued for churn."]
    assert "data-job-poll" in page  # live while it runs
    job = wait_until(lambda: (j := store.jobs.get(job_id)).status in FINAL and j, "the job")
    assert job.status == "succeeded", job.error
    page = client.get(f"/jobs/{job_id}").text
    assert "data-job-poll" not in page  # nothing to poll any more
    assert re.search(r'<progress class="job-progress" max="1" value="1(\.0)?"', page)
    assert "Stored as" in page and f"churn v{job.version}" in page and "now production" in page
    assert "accuracy" in page
    assert store.resolve("churn").version == job.version
    listing = client.get("/jobs?status=succeeded")
    assert listing.status_code == 200 and job_id[:8] in listing.text
    assert '<a href="/jobs?status=succeeded" aria-current="page">' in listing.text
    failed = client.get("/jobs?status=failed")
    assert failed.status_code == 200 and job_id[:8] not in failed.text
    assert "No failed jobs." in failed.text


def test_cancel_a_finished_job_shows_the_message(client: FlaskClient, dataset: str,
                                                 store: Store) -> None:
    csrf = login(client)
    r = client.post(f"/train?dataset={dataset}", data=train_form(csrf))
    job_id = r.location.rsplit("/", 1)[1]
    wait_until(lambda: store.jobs.get(job_id).status in FINAL, "the job")
    r = client.post(f"/jobs/{job_id}/cancel", data={"csrf": csrf})
    shown = notices(client.get(r.location).text)
    assert shown[0] == f"Job {job_id} has already succeeded; there is nothing to cancel."


def test_cancel_a_queued_job(client: FlaskClient, dataset: str, store: Store) -> None:
    job = store.jobs.create("train", {"dataset": dataset}, "later")  # a row no pool has taken
    csrf = login(client)
    r = client.post(f"/jobs/{job.id}/cancel", data={"csrf": csrf})
    assert notices(client.get(r.location).text) == ["Job cancelled."]
    assert store.jobs.get(job.id).status == "cancelled"


def test_bad_job_pages(client: FlaskClient) -> None:
    r = client.get("/jobs/nope")
    assert r.status_code == 404 and alerts(r.text)
    r = client.get("/jobs?status=weird")
    assert r.status_code == 400 and alerts(r.text)
    assert "No jobs." in client.get("/jobs").text
