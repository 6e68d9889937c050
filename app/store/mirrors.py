"""Mirror definitions and their state as durable rows (docs/mirrors.md).

A mirror names an upstream and the `name@ref`s it follows; its row also records where the last
sync stands (state, last success, last error, what was applied) and the counters the registry's
/metrics shows. The loop (app/fleet/mirror_loop.py) writes the state; the API and the command
line read it, and ask for a sync now by setting `sync_requested`.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from app.errors import NotFound
from app.store.db import Database
from app.store.records import iso


@dataclass(frozen=True)
class MirrorRecord:
    id: str
    upstream: str
    models: list[str]
    every_s: float
    trust: bool
    token: str | None  # sent to the upstream; never shown
    created_at: float
    state: str  # new, syncing, ok, error
    etag: str | None  # the ETag of the last manifest applied in full
    last_attempt: float | None
    last_success: float | None
    last_error: str
    last_error_at: float | None
    applied: list[dict[str, Any]]
    failures: int  # in a row, since the last success (the backoff grows with it)
    failures_total: int
    bytes_pulled: int
    versions_applied: int
    sync_requested: bool

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> MirrorRecord:
        return cls(
            id=row["id"], upstream=row["upstream"], models=json.loads(row["models"]),
            every_s=row["every_s"], trust=bool(row["trust"]), token=row["token"],
            created_at=row["created_at"], state=row["state"], etag=row["etag"],
            last_attempt=row["last_attempt"], last_success=row["last_success"],
            last_error=row["last_error"], last_error_at=row["last_error_at"],
            applied=json.loads(row["applied"]), failures=row["failures"],
            failures_total=row["failures_total"], bytes_pulled=row["bytes_pulled"],
            versions_applied=row["versions_applied"], sync_requested=bool(row["sync_requested"]),
        )

    def lag_s(self, now: float) -> float | None:
        """Seconds since the box last knew it matched its upstream (None: never)."""
        return None if self.last_success is None else max(0.0, now - self.last_success)

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now
        return {
            "id": self.id, "upstream": self.upstream, "models": self.models,
            "every_s": self.every_s, "trust": self.trust, "token": self.token is not None,
            "created_at": iso(self.created_at), "state": self.state,
            "last_attempt": iso(self.last_attempt), "last_success": iso(self.last_success),
            "lag_s": self.lag_s(now), "last_error": self.last_error or None,
            "last_error_at": iso(self.last_error_at), "applied": self.applied,
            "failures": self.failures, "failures_total": self.failures_total,
            "bytes_pulled": self.bytes_pulled, "versions_applied": self.versions_applied,
            "sync_requested": self.sync_requested,
        }


@dataclass(frozen=True)
class NewMirror:
    upstream: str
    models: list[str]
    every_s: float
    trust: bool = False
    token: str | None = None


class MirrorStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, mirror: NewMirror) -> MirrorRecord:
        mirror_id = secrets.token_hex(4)
        with self.db.write() as conn:
            conn.execute(
                "INSERT INTO mirrors (id, upstream, models, every_s, trust, token, created_at, "
                "sync_requested) VALUES (?, ?, ?, ?, ?, ?, ?, 1)",
                (mirror_id, mirror.upstream, json.dumps(mirror.models), mirror.every_s,
                 int(mirror.trust), mirror.token, time.time()),
            )
        return self.get(mirror_id)

    def all(self) -> list[MirrorRecord]:
        rows = self.db.connection().execute("SELECT * FROM mirrors ORDER BY created_at, id")
        return [MirrorRecord.from_row(r) for r in rows.fetchall()]

    def get(self, mirror_id: str) -> MirrorRecord:
        row = self.db.connection().execute(
            "SELECT * FROM mirrors WHERE id = ?", (mirror_id,)).fetchone()
        if row is None:
            raise NotFound(f"No mirror with id {mirror_id[:40]!r}; `modeldepot mirror list` "
                           "shows them.", code="no_such_mirror")
        return MirrorRecord.from_row(row)

    def remove(self, mirror_id: str) -> None:
        """Forget the mirror; the versions it brought stay (a box never deletes what it serves
        because an upstream changed)."""
        with self.db.write() as conn:
            if conn.execute("DELETE FROM mirrors WHERE id = ?", (mirror_id,)).rowcount == 0:
                raise NotFound(f"No mirror with id {mirror_id[:40]!r}.", code="no_such_mirror")

    def request_sync(self, mirror_id: str) -> MirrorRecord:
        self._update(mirror_id, "sync_requested = 1", ())
        return self.get(mirror_id)

    def started(self, mirror_id: str) -> None:
        self._update(mirror_id, "state = 'syncing', last_attempt = ?, sync_requested = 0",
                     (time.time(),))

    def succeeded(self, mirror_id: str, etag: str | None, applied: list[dict[str, Any]] | None,
                  bytes_pulled: int, versions_applied: int) -> None:
        """A sync that left the box matching its upstream; `applied` None keeps the last list
        (nothing changed upstream)."""
        sets = ("state = 'ok', etag = ?, last_success = ?, last_error = '', failures = 0, "
                "bytes_pulled = bytes_pulled + ?, versions_applied = versions_applied + ?")
        args: tuple[Any, ...] = (etag, time.time(), bytes_pulled, versions_applied)
        if applied is not None:
            sets += ", applied = ?"
            args += (json.dumps(applied),)
        self._update(mirror_id, sets, args)

    def failed(self, mirror_id: str, error: str, bytes_pulled: int) -> None:
        self._update(mirror_id,
                     "state = 'error', last_error = ?, last_error_at = ?, failures = failures + 1, "
                     "failures_total = failures_total + 1, bytes_pulled = bytes_pulled + ?",
                     (error, time.time(), bytes_pulled))

    def _update(self, mirror_id: str, sets: str, args: tuple[Any, ...]) -> None:
        with self.db.write() as conn:
            cur = conn.execute(f"UPDATE mirrors SET {sets} WHERE id = ?", (*args, mirror_id))
            if cur.rowcount == 0:
                raise NotFound(f"No mirror with id {mirror_id[:40]!r}.", code="no_such_mirror")
