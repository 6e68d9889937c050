"""Durable job rows: the truth about every training (and compile) job, whatever the pool thinks.

Life of a row: `queued` -> `running` (claimed by the worker process itself, which sets
`worker_pid` and counts `attempts`) -> `succeeded` | `failed` | `cancelled`. Final states never
change again.

The claim doubles as a fence. A worker's progress reports and its final write only apply while
the row is `running` with that worker's pid, so a worker left over from an earlier attempt (its
registry was killed, the row requeued) can never overwrite the attempt that replaced it.

Restarts: a row still `running` when the registry starts was interrupted (a crash, or a stop that
killed the pool). It is retried once: requeued if it has been claimed fewer than MAX_ATTEMPTS
times, else failed. Queued rows stay queued and the runner resubmits them.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
import uuid
from dataclasses import dataclass
from typing import Any

from app.errors import BadRequest, Conflict, NotFound
from app.store.db import Database
from app.store.pages import check_limit, decode_token, encode_token
from app.store.records import iso

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
ACTIVE = ("queued", "running")
MAX_ATTEMPTS = 2  # the first run and one retry after an interrupted registry
MAX_LOG_PAGE = 1000
_JOB_ID = re.compile(r"[0-9a-f]{32}")


class LostClaim(Exception):
    """This worker no longer owns the job: it was cancelled while queued, finished, or requeued."""


@dataclass(frozen=True)
class JobRecord:
    id: str
    kind: str
    status: str
    spec: dict[str, Any]
    progress: float
    step: str
    metrics: dict[str, Any]
    model: str | None
    version: int | None
    error: str
    attempts: int
    cancel_requested: bool
    worker_pid: int | None
    created_at: float
    started_at: float | None
    finished_at: float | None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def to_dict(self) -> dict[str, Any]:
        """The API shape; the worker pid stays inside (it means nothing to a client)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "status": self.status,
            "progress": self.progress,
            "step": self.step,
            "metrics": self.metrics,
            "model": self.model,
            "version": self.version,
            "error": self.error or None,
            "attempts": self.attempts,
            "cancel_requested": self.cancel_requested,
            "spec": self.spec,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
        }


@dataclass(frozen=True)
class LogLine:
    seq: int
    at: float
    line: str

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "at": iso(self.at), "line": self.line}


def _record(row: sqlite3.Row) -> JobRecord:
    return JobRecord(
        id=row["id"], kind=row["kind"], status=row["status"], spec=json.loads(row["spec"]),
        progress=row["progress"], step=row["step"], metrics=json.loads(row["metrics"]),
        model=row["model"], version=row["version"], error=row["error"],
        attempts=row["attempts"], cancel_requested=bool(row["cancel_requested"]),
        worker_pid=row["worker_pid"], created_at=row["created_at"],
        started_at=row["started_at"], finished_at=row["finished_at"],
    )


def _append_log(conn: sqlite3.Connection, job_id: str, line: str) -> None:
    conn.execute(
        "INSERT INTO job_log (job_id, seq, at, line) VALUES (?, "
        "(SELECT COALESCE(MAX(seq), 0) + 1 FROM job_log WHERE job_id = ?), ?, ?)",
        (job_id, job_id, time.time(), line[:2000]),
    )


class JobStore:
    """The jobs half of the store; reached as `Store.jobs`, in the registry and in pool workers."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- the registry side ----------------------------------------------------------------

    def create(self, kind: str, spec: dict[str, Any], model: str | None = None) -> JobRecord:
        job_id = uuid.uuid4().hex
        with self._db.write() as conn:
            conn.execute(
                "INSERT INTO jobs (id, kind, status, spec, model, created_at) "
                "VALUES (?, ?, 'queued', ?, ?, ?)",
                (job_id, kind, json.dumps(spec), model, time.time()),
            )
            _append_log(conn, job_id, f"Queued {kind} job.")
        return self.get(job_id)

    def get(self, job_id: str) -> JobRecord:
        row = None
        if _JOB_ID.fullmatch(job_id):
            with self._db.read() as conn:
                row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise NotFound(f"No job with id {job_id[:80]!r}.")
        return _record(row)

    def list_jobs(
        self, status: str | None = None, limit: int | None = None, page_token: str | None = None
    ) -> tuple[list[JobRecord], str | None]:
        """A page of jobs, newest first, optionally of one status."""
        # Imported here: catalog.py imports this module to hang `jobs` on the Store.

        if status is not None and status not in STATUSES:
            raise BadRequest(f"status must be one of {', '.join(STATUSES)}.")
        limit = check_limit(limit)
        after = decode_token(page_token)
        if after is not None and not (
            isinstance(after, list) and len(after) == 2 and isinstance(after[0], int | float)
            and isinstance(after[1], str)
        ):
            raise BadRequest("The page_token is not one this server issued.")
        sql = "SELECT * FROM jobs WHERE 1 = 1"
        args: list[Any] = []
        if status is not None:
            sql += " AND status = ?"
            args.append(status)
        if after is not None:
            sql += " AND (created_at < ? OR (created_at = ? AND id > ?))"
            args += [after[0], after[0], after[1]]
        sql += " ORDER BY created_at DESC, id LIMIT ?"
        args.append(limit + 1)
        with self._db.read() as conn:
            rows = conn.execute(sql, args).fetchall()
        records = [_record(r) for r in rows[:limit]]
        last = records[-1] if records else None
        token = encode_token([last.created_at, last.id]) if last and len(rows) > limit else None
        return records, token

    def active(self) -> list[JobRecord]:
        """Queued and running jobs, oldest first: the order they were asked for."""
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT * FROM jobs WHERE status IN ('queued', 'running') ORDER BY created_at, id"
            ).fetchall()
        return [_record(r) for r in rows]

    def request_cancel(self, job_id: str) -> JobRecord:
        """A queued job is cancelled now (it never runs); a running one stops at its next step."""
        job = self.get(job_id)
        now = time.time()
        with self._db.write() as conn:
            row = conn.execute("SELECT status FROM jobs WHERE id = ?", (job.id,)).fetchone()
            if row["status"] == "queued":
                conn.execute(
                    "UPDATE jobs SET status = 'cancelled', cancel_requested = 1, finished_at = ? "
                    "WHERE id = ?", (now, job.id))
                _append_log(conn, job.id, "Cancelled before it started.")
            elif row["status"] == "running":
                conn.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job.id,))
                _append_log(conn, job.id, "Cancel requested; the job stops at its next step.")
            else:
                raise Conflict(f"Job {job.id} has already {row['status']}; there is nothing to "
                               "cancel.", code="job_finished")
        return self.get(job.id)

    def fail(self, job_id: str, error: str, status: str = "failed") -> bool:
        """End an active job from the registry side (its worker is gone); False if already final."""
        with self._db.write() as conn:
            done = conn.execute(
                "UPDATE jobs SET status = ?, error = ?, finished_at = ? "
                "WHERE id = ? AND status IN ('queued', 'running')",
                (status, error if status == "failed" else "", time.time(), job_id),
            ).rowcount
            if done:
                _append_log(conn, job_id, error)
        return bool(done)

    def requeue(self, job_id: str, reason: str, *, count_attempt: bool) -> bool:
        """Put a running job back in the queue. `count_attempt=False` when the job was not at
        fault (another job's worker broke the pool), so it keeps its retry."""
        with self._db.write() as conn:
            done = conn.execute(
                "UPDATE jobs SET status = 'queued', worker_pid = NULL, progress = 0, "
                "step = 'queued', attempts = attempts - ? WHERE id = ? AND status = 'running'",
                (0 if count_attempt else 1, job_id),
            ).rowcount
            if done:
                _append_log(conn, job_id, reason)
        return bool(done)

    def recover_interrupted(self) -> tuple[list[str], list[str]]:
        """At startup: retry once each job a stopped registry left running; returns
        (requeued ids, failed ids)."""
        requeued, failed = [], []
        now = time.time()
        with self._db.write() as conn:
            for row in conn.execute(
                "SELECT id, attempts FROM jobs WHERE status = 'running' ORDER BY created_at"
            ).fetchall():
                if row["attempts"] < MAX_ATTEMPTS:
                    conn.execute(
                        "UPDATE jobs SET status = 'queued', worker_pid = NULL, progress = 0, "
                        "step = 'queued' WHERE id = ?", (row["id"],))
                    _append_log(conn, row["id"], "The registry stopped while this job ran; "
                                "running it once more.")
                    requeued.append(row["id"])
                else:
                    message = (f"The registry stopped while this job ran, {row['attempts']} "
                               "times; it is not retried again.")
                    conn.execute(
                        "UPDATE jobs SET status = 'failed', error = ?, finished_at = ? "
                        "WHERE id = ?", (message, now, row["id"]))
                    _append_log(conn, row["id"], message)
                    failed.append(row["id"])
        return requeued, failed

    def log(self, job_id: str, after: int = 0) -> list[LogLine]:
        job = self.get(job_id)
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT seq, at, line FROM job_log WHERE job_id = ? AND seq > ? ORDER BY seq "
                "LIMIT ?", (job.id, after, MAX_LOG_PAGE)).fetchall()
        return [LogLine(r["seq"], r["at"], r["line"]) for r in rows]

    def append_log(self, job_id: str, line: str) -> None:
        with self._db.write() as conn:
            _append_log(conn, job_id, line)

    # -- the worker side (fenced by the claim) --------------------------------------------

    def claim(self, job_id: str, pid: int) -> JobRecord | None:
        """Take a queued job for the worker `pid`; None if it was cancelled or is not queued."""
        with self._db.write() as conn:
            row = conn.execute(
                "UPDATE jobs SET status = 'running', attempts = attempts + 1, worker_pid = ?, "
                "started_at = ?, progress = 0, step = 'starting' "
                "WHERE id = ? AND status = 'queued' AND cancel_requested = 0 RETURNING attempts",
                (pid, time.time(), job_id),
            ).fetchone()
            if row is None:
                return None
            _append_log(conn, job_id, f"Started in worker process {pid} (attempt {row[0]}).")
        return self.get(job_id)

    def report(self, job_id: str, pid: int, progress: float, step: str,
               line: str | None = None) -> bool:
        """Record progress; returns whether a cancel was requested. LostClaim if not ours."""
        with self._db.write() as conn:
            row = conn.execute(
                "SELECT status, worker_pid, cancel_requested FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
            if row is None or row["status"] != "running" or row["worker_pid"] != pid:
                raise LostClaim(job_id)
            conn.execute("UPDATE jobs SET progress = ?, step = ? WHERE id = ?",
                         (max(0.0, min(1.0, progress)), step, job_id))
            if line:
                _append_log(conn, job_id, line)
        return bool(row["cancel_requested"])

    def finish(
        self, job_id: str, pid: int, status: str, *, error: str = "",
        metrics: dict[str, Any] | None = None, model: str | None = None,
        version: int | None = None,
    ) -> bool:
        """The worker's last write; False (and nothing written) if the claim was lost."""
        if status not in ("succeeded", "failed", "cancelled"):
            raise ValueError(status)
        with self._db.write() as conn:
            done = conn.execute(
                "UPDATE jobs SET status = ?, error = ?, metrics = ?, "
                "model = COALESCE(?, model), version = ?, finished_at = ?, "
                "progress = CASE WHEN ? = 'succeeded' THEN 1.0 ELSE progress END, "
                "step = ? WHERE id = ? AND status = 'running' AND worker_pid = ?",
                (status, error, json.dumps(metrics or {}), model, version, time.time(),
                 status, status, job_id, pid),
            ).rowcount
            if done:
                _append_log(conn, job_id, error or f"Job {status}.")
        return bool(done)
