"""What the routes and the dashboard both do: receive and store an upload or a dataset, submit
a job. Routes (versions_api, datasets_api, jobs_api) and dashboard pages stay thin and call these,
so a check exists once whichever way a request came in."""

from __future__ import annotations

import logging
from typing import Any

from flask import request

from app.client import TICKET_HEADER
from app.config import Settings
from app.diskspace import check_room
from app.errors import Unprocessable
from app.formats import SandboxLimits, Signature, inspect_upload
from app.intake import new_version, require_token_for_trust
from app.registry.context import registry
from app.registry.libraries import import_model_libraries
from app.registry.schemas import VersionMetadata
from app.registry.uploads import ReceivedUpload, receive_upload
from app.store import VersionRecord
from app.store.datasets import DatasetRecord
from app.store.jobs import JobRecord
from app.store.names import check_description, check_tags
from app.training.hooks import version_ready
from app.training.runner import JobRunner
from app.training.tabular import inspect_csv

log = logging.getLogger(__name__)


# -- model versions ---------------------------------------------------------------------------

def check_disk_room(what: str) -> None:
    """507 before anything is read or written when the request's body (as far as its length
    says) would leave less free disk than min_free_disk (app/diskspace.py)."""
    settings = registry().settings
    check_room(settings.home, settings.min_free_disk, request.content_length or 0, what)


def upload_ticket() -> str | None:
    """The place in line an earlier refusal of this upload gave (app/registry/admission.py)."""
    return request.headers.get(TICKET_HEADER)


def receive_model_file(text_fields: tuple[str, ...] = ("metadata",)) -> ReceivedUpload:
    """The request's multipart body, its `file` part streamed to a temp file under the limit."""
    reg = registry()
    check_disk_room("this upload")
    return receive_upload(request.stream, request.content_type, request.content_length,
                          reg.store.blobs, limit=reg.settings.max_upload_bytes,
                          setting="max_upload_bytes", slots=reg.uploads,
                          ticket=upload_ticket(), text_fields=text_fields)


def store_upload(
    name: str, upload: ReceivedUpload, meta: VersionMetadata, token_presented: bool
) -> VersionRecord:
    """Check, inspect and store a received file: the one path the API and the dashboard share."""
    reg = registry()
    check_description(meta.description)
    check_tags(meta.tags)
    declared = Signature.from_dict(meta.signature) if meta.signature is not None else None
    require_token_for_trust(meta.trust, token_presented)
    inspection = inspect_upload(
        upload.temp, trust=meta.trust, filename=upload.filename, declared_signature=declared,
        receive=reg.store.blobs.receive, limits=sandbox_limits(reg.settings),
    )
    record = reg.store.add_version(
        name, upload.temp, upload.sha256, upload.size,
        new_version(inspection, metrics=meta.metrics, params=meta.params,
                    description=meta.description, tags=meta.tags, source="upload"),
    )
    log.info("stored %s version %d (%s, %d bytes)", name, record.version, record.format,
             record.size or 0)
    version_ready(reg.store, reg.runner, record)
    # Read again: the hook may have queued the twin build, and the answer should say so.
    return reg.store.get_version(name, record.version)


def sandbox_limits(settings: Settings) -> SandboxLimits:
    return SandboxLimits(settings.sandbox_memory_mb, settings.sandbox_seconds)



# -- datasets ---------------------------------------------------------------------------------

def receive_dataset_file() -> ReceivedUpload:
    """The request's multipart body, its `file` part streamed to a temp file under the cap."""
    reg = registry()
    check_disk_room("this dataset")
    return receive_upload(request.stream, request.content_type, request.content_length,
                          reg.store.blobs, limit=reg.settings.max_dataset_bytes,
                          setting="max_dataset_bytes", slots=reg.uploads,
                          ticket=upload_ticket(), text_fields=("name",))


def store_dataset(upload: ReceivedUpload, name: str | None) -> tuple[DatasetRecord, bool]:
    """Check and store a received CSV: the one path the API and the dashboard share."""
    summary = inspect_csv(upload.temp)
    return registry().store.datasets.add(
        upload.temp, upload.sha256, upload.size, name or upload.filename or "",
        summary.row_count, summary.columns,
    )



# -- jobs -------------------------------------------------------------------------------------

def job_runner() -> JobRunner:
    return registry().runner


def submit_job(data: dict[str, Any]) -> JobRecord:
    """Check and queue a job from a JSON object: the path the API and dashboard share."""
    runner = job_runner()
    kind = data.get("kind")
    job_kind = runner.kinds.get(kind) if isinstance(kind, str) else None
    if job_kind is None or job_kind.parse_request is None:
        accepted = sorted(k for k, v in runner.kinds.items() if v.parse_request is not None)
        raise Unprocessable(
            f"Field 'kind' must be one of: {', '.join(accepted)}"
            + (f" (not {str(kind)[:40]!r})." if kind is not None else "."),
            code="invalid_kind",
        )
    import_model_libraries()  # parsing constructs the estimator: scikit-learn must be imported
    spec, model = job_kind.parse_request(runner.store, data)
    job = runner.submit(job_kind.name, spec, model=model)
    log.info("queued %s job %s for model %s", job.kind, job.id, model)
    return job
