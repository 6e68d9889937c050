"""Durable job rows: claim, progress, cancel, finish, the fence, and recovery after a restart."""

from __future__ import annotations

import pytest

from app.errors import BadRequest, Conflict, NotFound
from app.store import Store
from app.store.jobs import MAX_ATTEMPTS, LostClaim

SPEC = {"dataset": "d" * 64, "model": "m"}


def test_claim_report_finish(store: Store) -> None:
    job = store.jobs.create("train", SPEC, "m")
    assert (job.status, job.attempts, job.progress, job.started_at) == ("queued", 0, 0.0, None)
    claimed = store.jobs.claim(job.id, pid=111)
    assert claimed is not None and claimed.status == "running" and claimed.attempts == 1
    assert claimed.started_at is not None
    assert store.jobs.report(job.id, 111, 0.5, "fit", "Fitted 5 of 10.") is False
    assert store.jobs.get(job.id).progress == 0.5
    assert store.jobs.finish(job.id, 111, "succeeded", metrics={"accuracy": 0.9}, model="m",
                             version=3)
    done = store.jobs.get(job.id)
    assert (done.status, done.progress, done.version, done.metrics) == (
        "succeeded", 1.0, 3, {"accuracy": 0.9})
    lines = [line.line for line in store.jobs.log(job.id)]
    assert lines[0] == "Queued train job." and "Fitted 5 of 10." in lines
    assert lines[-1] == "Job succeeded."
    assert [line.seq for line in store.jobs.log(job.id, after=2)][0] == 3


def test_cancel_queued_job_never_runs(store: Store) -> None:
    job = store.jobs.create("train", SPEC)
    cancelled = store.jobs.request_cancel(job.id)
    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    assert store.jobs.claim(job.id, pid=5) is None
    assert store.jobs.get(job.id).attempts == 0


def test_cancel_running_job_is_seen_at_next_report(store: Store) -> None:
    job = store.jobs.create("train", SPEC)
    store.jobs.claim(job.id, pid=7)
    assert store.jobs.request_cancel(job.id).status == "running"
    assert store.jobs.report(job.id, 7, 0.3, "fit") is True
    assert store.jobs.finish(job.id, 7, "cancelled")
    with pytest.raises(Conflict) as info:
        store.jobs.request_cancel(job.id)
    assert info.value.message == f"Job {job.id} has already cancelled; there is nothing to cancel."


def test_stale_worker_is_fenced_out(store: Store) -> None:
    """A worker of an earlier attempt can neither report nor finish once the job was requeued."""
    job = store.jobs.create("train", SPEC)
    store.jobs.claim(job.id, pid=100)
    assert store.jobs.requeue(job.id, "pool broke", count_attempt=False)
    assert store.jobs.get(job.id).attempts == 0  # not the job's fault: it keeps its retry
    store.jobs.claim(job.id, pid=200)
    with pytest.raises(LostClaim):
        store.jobs.report(job.id, 100, 0.9, "fit")
    assert not store.jobs.finish(job.id, 100, "succeeded", version=1)
    assert store.jobs.get(job.id).status == "running"
    assert store.jobs.finish(job.id, 200, "failed", error="boom")
    assert store.jobs.get(job.id).error == "boom"


def test_restart_retries_a_running_job_once_then_fails_it(store: Store) -> None:
    job = store.jobs.create("train", SPEC)
    waiting = store.jobs.create("train", SPEC)
    store.jobs.claim(job.id, pid=1)
    assert store.jobs.recover_interrupted() == ([job.id], [])
    assert store.jobs.get(job.id).status == "queued"
    assert store.jobs.get(waiting.id).status == "queued"
    store.jobs.claim(job.id, pid=2)
    assert store.jobs.get(job.id).attempts == MAX_ATTEMPTS
    assert store.jobs.recover_interrupted() == ([], [job.id])
    failed = store.jobs.get(job.id)
    assert failed.status == "failed" and failed.finished_at is not None
    assert failed.error == (
        "The registry stopped while this job ran, 2 times; it is not retried again.")
    assert [j.id for j in store.jobs.active()] == [waiting.id]


def test_fail_only_touches_active_jobs(store: Store) -> None:
    job = store.jobs.create("train", SPEC)
    assert store.jobs.fail(job.id, "worker gone")
    assert not store.jobs.fail(job.id, "again")
    assert store.jobs.get(job.id).error == "worker gone"


def test_list_filters_and_pages(store: Store) -> None:
    jobs = [store.jobs.create("train", SPEC) for _ in range(5)]
    newest_first = [j.id for j in sorted(jobs, key=lambda j: (-j.created_at, j.id))]
    ids = [j.id for j in jobs]
    store.jobs.request_cancel(ids[0])
    page, token = store.jobs.list_jobs(limit=2)
    assert [j.id for j in page] == newest_first[:2] and token
    rest, token2 = store.jobs.list_jobs(limit=10, page_token=token)
    assert [j.id for j in rest] == newest_first[2:] and token2 is None
    assert [j.id for j in store.jobs.list_jobs(status="cancelled")[0]] == [ids[0]]
    with pytest.raises(BadRequest) as info:
        store.jobs.list_jobs(status="bogus")
    assert info.value.message == (
        "status must be one of queued, running, succeeded, failed, cancelled.")
    with pytest.raises(BadRequest):
        store.jobs.list_jobs(page_token="bm90IG91cnM")


def test_unknown_and_malformed_ids_are_not_found(store: Store) -> None:
    for job_id in ("0" * 32, "../../etc", "x"):
        with pytest.raises(NotFound) as info:
            store.jobs.get(job_id)
        assert info.value.message.startswith("No job with id")
