"""Datasets: upload a CSV (through the API's own receive and check functions), list them, look at
one's columns and first rows, delete one."""

from __future__ import annotations

import csv
import io
from itertools import islice

from flask import Blueprint, url_for
from werkzeug.wrappers import Response

from app.errors import ModelDepotError
from app.registry.context import registry
from app.registry.dashboard.web import go, page
from app.registry.services import receive_dataset_file, store_dataset
from app.resources import resource_error

bp = Blueprint("datasets", __name__)
PREVIEW_ROWS = 20
MAX_CELL = 200


def preview(dataset_id: str, rows: int = PREVIEW_ROWS) -> list[list[str]]:
    """The first rows after the header, cells cut to a readable length. The file was checked when
    it was uploaded (UTF-8, well-formed CSV), so this only reads it."""
    path = registry().store.datasets.path(dataset_id)
    with path.open("rb") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        records = (row for row in csv.reader(text) if row)
        next(records, None)  # the header: the page shows the columns from the record
        return [[cell[:MAX_CELL] for cell in row] for row in islice(records, rows)]


def _render(status: int = 200, **context: object) -> Response:
    datasets = registry().store.datasets.list_datasets()
    return page("datasets.html", status, datasets=datasets, nav="datasets",
                max_dataset=registry().settings.max_dataset_bytes, **context)


@bp.get("/datasets")
def index() -> Response:
    return _render()


@bp.post("/datasets")
def upload() -> Response:
    try:
        received = receive_dataset_file()
        try:
            record, created = store_dataset(received, received.text("name"))
        finally:
            received.discard()
    except ModelDepotError as exc:
        exc = resource_error(exc) or exc
        return _render(exc.status, error=exc.message)
    what = "Stored" if created else "This file was already here as"
    return go(url_for(".show", dataset_id=record.id),
              ok=f"{what} dataset {record.name or record.id[:12]}: {record.row_count} rows, "
                 f"{len(record.columns)} columns.")


@bp.get("/datasets/<dataset_id>")
def show(dataset_id: str) -> Response:
    record = registry().store.datasets.get(dataset_id)
    return page("dataset.html", dataset=record, rows=preview(record.id), nav="datasets")


@bp.post("/datasets/<dataset_id>/delete")
def delete(dataset_id: str) -> Response:
    try:
        record = registry().store.datasets.get(dataset_id)
        registry().store.datasets.delete(record.id)
    except ModelDepotError as exc:
        return go(url_for(".index"), error=exc.message)
    return go(url_for(".index"), ok=f"Dataset {record.name or record.id[:12]} deleted.")
