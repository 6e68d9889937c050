"""Routes for jobs: submit (202), list, show, cancel, log.

The body of `POST /jobs` is read once and checked completely by the kind's parser (jobkinds.py)
before any row exists, so a refused request leaves nothing behind.
"""

from __future__ import annotations

import logging

from flask import Response, request

from app.registry.api import ApiBlueprint, json_body_bytes, json_object, json_response
from app.registry.context import registry
from app.registry.job_schemas import Job, JobLog, JobPage
from app.registry.models_api import query_int
from app.registry.services import job_runner, submit_job
from app.training.spec import TrainRequest

log = logging.getLogger(__name__)
api = ApiBlueprint("jobs", "/api/v1")


@api.route("POST", "/jobs", "Start a training job (202 with the queued job)", body=TrainRequest,
           response=Job, status=202)
def create_job() -> Response:
    job = submit_job(json_object(json_body_bytes()))
    return json_response(job.to_dict(), 202, headers={"Location": f"/api/v1/jobs/{job.id}"})


@api.route("GET", "/jobs", "List jobs, newest first", response=JobPage,
           query=("status", "limit", "page_token"))
def list_jobs() -> Response:
    records, token = registry().store.jobs.list_jobs(
        status=request.args.get("status") or None, limit=query_int("limit"),
        page_token=request.args.get("page_token"),
    )
    return json_response({"jobs": [r.to_dict() for r in records], "next_page_token": token})


@api.route("GET", "/jobs/<job_id>", "Show a job: status, progress, metrics, version",
           response=Job)
def get_job(job_id: str) -> Response:
    return json_response(registry().store.jobs.get(job_id).to_dict())


@api.route("DELETE", "/jobs/<job_id>",
           "Cancel a job: a queued one at once (200), a running one at its next step (202)",
           response=Job)
def cancel_job(job_id: str) -> Response:
    job = job_runner().cancel(job_id)
    return json_response(job.to_dict(), 200 if job.status == "cancelled" else 202)


@api.route("GET", "/jobs/<job_id>/log", "The job's log lines (?after=seq for newer ones)",
           response=JobLog, query=("after",))
def job_log(job_id: str) -> Response:
    jobs = registry().store.jobs
    after = query_int("after") or 0
    job = jobs.get(job_id)
    lines = jobs.log(job.id, after)
    return json_response({
        "id": job.id,
        "status": job.status,
        "lines": [line.to_dict() for line in lines],
        "next_after": lines[-1].seq if lines else after,
    })
