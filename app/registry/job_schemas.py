"""Response bodies of the dataset and job routes, for the OpenAPI document.

Requests: a dataset upload is multipart (DatasetForm); a job is TrainRequest (train_spec.py).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class DatasetColumn(BaseModel):
    name: str
    type: str = Field(description="integer, number or string, inferred from every value")
    missing: int = Field(description="Empty (or NA, NaN, null) cells")
    distinct: int | None = Field(description="Distinct values; null when more than 1000")


class Dataset(BaseModel):
    id: str = Field(description="sha256 of the file: the same bytes always get the same id")
    name: str
    size: int
    row_count: int
    columns: list[DatasetColumn]
    created_at: str


class DatasetPage(BaseModel):
    datasets: list[Dataset]


class DatasetForm(BaseModel):
    """multipart/form-data: `file` (the CSV, UTF-8, header line first) and optional `name`."""

    file: bytes
    name: str | None = None


class Job(BaseModel):
    id: str
    kind: str = Field(description="train (compile jobs are started by the registry itself)")
    status: str = Field(description="queued, running, succeeded, failed or cancelled")
    progress: float = Field(description="0..1, reported between real steps")
    step: str = Field(description="load, split, fit, evaluate, save, or the final status")
    metrics: dict[str, float]
    model: str | None
    version: int | None = Field(description="The version the job created, once succeeded")
    error: str | None
    attempts: int = Field(description="How many times a worker started it (a restart retries once)")
    cancel_requested: bool
    spec: dict[str, Any]
    created_at: str
    started_at: str | None
    finished_at: str | None


class JobPage(BaseModel):
    jobs: list[Job]
    next_page_token: str | None


class JobLogLine(BaseModel):
    seq: int
    at: str
    line: str


class JobLog(BaseModel):
    id: str
    status: str
    lines: list[JobLogLine]
    next_after: int = Field(description="Pass as ?after= to get only newer lines")
