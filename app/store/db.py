"""SQLite connection handling: pragmas, per-thread connections, write transactions, migrations.

Durability settings: WAL so readers never block the writer, `synchronous=FULL` so a commit that
returned survives power loss, a busy timeout so concurrent writers queue instead of failing.
Writes go through `BEGIN IMMEDIATE`, which takes the write lock up front: a read-then-write
transaction can then never fail half-way with SQLITE_BUSY.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from app.errors import SchemaTooNew, StoreError
from app.store.schema import MIGRATIONS

BUSY_TIMEOUT_MS = 30_000
SCHEMA_VERSION = len(MIGRATIONS)


def _connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    if readonly:
        uri = f"{path.resolve().as_uri()}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    else:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = FULL")
    return conn


class Database:
    """One connection per thread (sqlite3 connections must not be shared across threads mid-use)."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self.readonly = readonly
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        if not readonly:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = self.connection()
            # A newer release's database is refused before anything is written to it, even
            # the switch to WAL (a data dir restored from a backup or a fixture is not in WAL).
            check_schema(conn)
            conn.execute("PRAGMA journal_mode = WAL")
            migrate(conn)
        else:
            check_schema(self.connection())

    def connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = _connect(self.path, readonly=self.readonly)
            except sqlite3.Error as exc:
                raise StoreError(f"The database could not be opened: {exc}.") from exc
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: committed on success, rolled back on any exception."""
        conn = self.connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: one consistent snapshot across several queries."""
        conn = self.connection()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()


def check_schema(conn: sqlite3.Connection) -> int:
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"The database was written by a newer ModelDepot (schema {version}; this one knows up "
            f"to {SCHEMA_VERSION}). Nothing was changed. Run the newer ModelDepot, or point "
            "MODELDEPOT_HOME at another data dir."
        )
    return version


def migrate(conn: sqlite3.Connection) -> None:
    """Apply the missing migrations, each in its own transaction with its `user_version` bump."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = check_schema(conn)
        for number, script in enumerate(MIGRATIONS[current:], start=current + 1):
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def bump_revision(conn: sqlite3.Connection) -> None:
    """Say "what is served may have changed": inference polls this counter
    (docs/architecture.md)."""
    conn.execute("UPDATE revision SET value = value + 1 WHERE id = 1")
