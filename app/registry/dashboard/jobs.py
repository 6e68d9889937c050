"""Train a model from a dataset, and follow jobs: the list, one job's live progress and log, cancel.

The training form becomes the same JSON body `POST /api/v1/jobs` takes and goes through the API's
own `submit_job`, so every check (dataset, columns, estimator allow-list, params) is the API's and
its messages are shown as they are.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, request, url_for
from werkzeug.wrappers import Response

from app.errors import BadRequest, ModelDepotError
from app.registry.context import registry
from app.registry.dashboard.web import form_text, go, page
from app.registry.services import job_runner, submit_job
from app.store.datasets import DatasetRecord
from app.store.jobs import STATUSES
from app.training.estimators import ALLOWED, CLASSIFIER

bp = Blueprint("jobs", __name__)
PAGE_SIZE = 50
DEFAULT_ESTIMATOR = "sklearn.ensemble.RandomForestClassifier"


def estimator_groups() -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {"Classifiers": [], "Regressors": []}
    for path, task in ALLOWED.items():
        groups["Classifiers" if task == CLASSIFIER else "Regressors"].append(path)
    return groups


def _chosen_dataset() -> DatasetRecord | None:
    dataset_id = request.args.get("dataset", "").strip()
    return registry().store.datasets.get(dataset_id) if dataset_id else None


def _render_train(status: int = 200, **context: Any) -> Response:
    dataset = _chosen_dataset()
    values = {"estimator": DEFAULT_ESTIMATOR, "params": "{}", "test_size": "0.25"}
    values.update(context.pop("values", {}))
    return page("train.html", status, datasets=registry().store.datasets.list_datasets(),
                dataset=dataset, estimators=estimator_groups(), values=values, nav="train",
                **context)


@bp.get("/train")
def train() -> Response:
    return _render_train()


def _number(text: str) -> Any:
    # Sent as typed when it is not a number: the API names the field and the problem.
    try:
        return float(text)
    except ValueError:
        return text


def train_request(dataset: DatasetRecord, form: dict[str, str]) -> dict[str, Any]:
    """The form as the JSON body of POST /api/v1/jobs."""
    try:
        params = json.loads(form.get("params") or "{}")
    except ValueError as exc:
        raise BadRequest(
            f"Params must be a JSON object such as {{\"n_estimators\": 100}}: {exc}.",
            code="invalid_json",
        ) from exc
    body: dict[str, Any] = {
        "kind": "train", "model": form.get("model", ""), "dataset": dataset.id,
        "target": form.get("target", ""), "estimator": form.get("estimator", ""),
        "params": params,
    }
    if form.get("test_size"):
        body["test_size"] = _number(form["test_size"])
    if form.get("alias"):
        body["alias"] = form["alias"]
    if form.get("description"):
        body["description"] = form["description"]
    return body


@bp.post("/train")
def submit() -> Response:
    fields = ("model", "target", "estimator", "params", "test_size", "alias", "description")
    values: dict[str, str] = {}
    try:
        values = {name: form_text(name) for name in fields}
        dataset = _chosen_dataset()
        if dataset is None:
            raise BadRequest("Choose a dataset first.", code="missing_field")
        job = submit_job(train_request(dataset, values))
    except ModelDepotError as exc:
        return _render_train(exc.status, error=exc.message, values=values)
    return go(url_for(".show", job_id=job.id), ok=f"Training job queued for {job.model}.")


@bp.get("/jobs")
def index() -> Response:
    status = request.args.get("status") or None
    jobs, next_token = registry().store.jobs.list_jobs(
        status=status, limit=PAGE_SIZE, page_token=request.args.get("page_token"))
    next_url = url_for(".index", status=status, page_token=next_token) if next_token else None
    return page("jobs.html", jobs=jobs, chosen=status, statuses=STATUSES, next_url=next_url,
                nav="jobs")


@bp.get("/jobs/<job_id>")
def show(job_id: str) -> Response:
    jobs = registry().store.jobs
    job = jobs.get(job_id)
    lines = jobs.log(job.id)
    return page("job.html", job=job, lines=lines, next_after=lines[-1].seq if lines else 0,
                nav="jobs")


@bp.post("/jobs/<job_id>/cancel")
def cancel(job_id: str) -> Response:
    try:
        job = job_runner().cancel(job_id)
    except ModelDepotError as exc:
        return go(url_for(".show", job_id=job_id), error=exc.message)
    message = ("Job cancelled." if job.status == "cancelled"
               else "Cancel requested: the job stops at its next step.")
    return go(url_for(".show", job_id=job.id), ok=message)
