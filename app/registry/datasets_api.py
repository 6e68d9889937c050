"""Routes for datasets: upload a CSV, list, show, delete.

An upload streams to a temp file in the data dir (the model upload's decoder, with its own size
cap), is checked line by line (tabular.inspect_csv), and only then placed under its sha256. The
same bytes sent twice are one dataset: the second upload answers 200 with the first's record.
"""

from __future__ import annotations

import logging

from flask import Response

from app.registry.api import ApiBlueprint, json_response
from app.registry.context import registry
from app.registry.job_schemas import Dataset, DatasetForm, DatasetPage
from app.registry.schemas import Deleted
from app.registry.services import receive_dataset_file, store_dataset

log = logging.getLogger(__name__)
api = ApiBlueprint("datasets", "/api/v1")


@api.route("POST", "/datasets", "Upload a CSV dataset (201 new, 200 if the same bytes exist)",
           body=DatasetForm, response=Dataset, status=201, content_type="multipart/form-data")
def upload_dataset() -> Response:
    upload = receive_dataset_file()
    try:
        record, created = store_dataset(upload, upload.text("name"))
    finally:
        upload.discard()
    if created:
        log.info("stored dataset %s (%d rows, %d columns)", record.id[:12], record.row_count,
                 len(record.columns))
    return json_response(record.to_dict(), 201 if created else 200)


@api.route("GET", "/datasets", "List datasets, newest first", response=DatasetPage)
def list_datasets() -> Response:
    records = registry().store.datasets.list_datasets()
    return json_response({"datasets": [d.to_dict() for d in records]})


@api.route("GET", "/datasets/<dataset_id>", "Show a dataset's columns and row count",
           response=Dataset)
def get_dataset(dataset_id: str) -> Response:
    return json_response(registry().store.datasets.get(dataset_id).to_dict())


@api.route("DELETE", "/datasets/<dataset_id>",
           "Delete a dataset and free its file (409 while an unfinished job reads it)",
           response=Deleted)
def delete_dataset(dataset_id: str) -> Response:
    freed = registry().store.datasets.delete(dataset_id)
    return json_response({"deleted": True, "freed_bytes": freed})
