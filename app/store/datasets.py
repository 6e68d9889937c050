"""Datasets: CSV files in the blob store, named by their sha256, with a row describing them.

The row and the file appear together: the file is placed while the write transaction that
inserts the row holds the SQLite write lock, the same rule model versions follow (catalog.py), so
a crash leaves either both or a file that startup reconciliation removes as unreferenced.
A dataset is the input of jobs, so one a queued or running job still reads cannot be deleted.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.errors import Conflict, NotFound
from app.store.blobs import BlobStore
from app.store.db import Database
from app.store.records import iso
from app.store.trash import empty_trash, trash_unreferenced

_DATASET_ID = re.compile(r"[0-9a-f]{64}")
MAX_NAME = 255


@dataclass(frozen=True)
class Column:
    """One CSV column: its name, the type inferred from every value, and how values look."""

    name: str
    type: str  # "integer", "number" or "string"
    missing: int  # empty cells
    distinct: int | None  # distinct non-empty values, None when more than the counting cap

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "missing": self.missing,
                "distinct": self.distinct}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Column:
        return cls(d["name"], d["type"], d["missing"], d["distinct"])

    @property
    def numeric(self) -> bool:
        return self.type in ("integer", "number")


@dataclass(frozen=True)
class DatasetRecord:
    id: str
    name: str
    size: int
    row_count: int
    columns: tuple[Column, ...]
    created_at: float

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "size": self.size,
            "row_count": self.row_count,
            "columns": [c.to_dict() for c in self.columns],
            "created_at": iso(self.created_at),
        }


def clean_name(name: str | None) -> str:
    """A display name from a client (usually the file name): printable, bounded, never a path."""
    text = "".join(ch for ch in (name or "") if ch.isprintable())
    return text.replace("/", "_").replace("\\", "_")[:MAX_NAME]


class DatasetStore:
    """The datasets half of the store; reached as `Store.datasets`."""

    def __init__(self, db: Database, blobs: BlobStore, tmp: Path) -> None:
        self._db = db
        self._blobs = blobs
        self._tmp = tmp  # where retired files wait for the commit (trash.py)

    def add(
        self, temp: Path, sha256: str, size: int, name: str, row_count: int,
        columns: tuple[Column, ...],
    ) -> tuple[DatasetRecord, bool]:
        """Store a verified CSV temp file; returns (record, created). The temp is consumed.

        The id is the content hash, so sending the same bytes again returns the existing
        dataset (created=False) and leaves its name as it was.
        """
        try:
            with self._db.write() as conn:
                if conn.execute("SELECT 1 FROM datasets WHERE id = ?", (sha256,)).fetchone():
                    created = False
                else:
                    self._blobs.adopt(temp, sha256)
                    conn.execute(
                        "INSERT INTO datasets (id, name, size, row_count, columns, created_at) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (sha256, clean_name(name), size, row_count,
                         json.dumps([c.to_dict() for c in columns]), time.time()),
                    )
                    created = True
        finally:
            temp.unlink(missing_ok=True)
        return self.get(sha256), created

    def get(self, dataset_id: str) -> DatasetRecord:
        row = None
        if _DATASET_ID.fullmatch(dataset_id):
            with self._db.read() as conn:
                row = conn.execute("SELECT * FROM datasets WHERE id = ?", (dataset_id,)).fetchone()
        if row is None:
            raise NotFound(
                f"No dataset with id {dataset_id[:80]!r}. Upload the CSV with "
                "POST /api/v1/datasets (or `modeldepot datasets push`) to get its id."
            )
        return _record(row)

    def list_datasets(self) -> list[DatasetRecord]:
        """Every dataset, newest first (datasets are few: each is a file someone uploaded)."""
        with self._db.read() as conn:
            rows = conn.execute("SELECT * FROM datasets ORDER BY created_at DESC, id").fetchall()
        return [_record(row) for row in rows]

    def path(self, dataset_id: str) -> Path:
        return self._blobs.path(self.get(dataset_id).id)

    def delete(self, dataset_id: str) -> int:
        """Delete a dataset and free its file; 409 while a queued or running job reads it."""
        record = self.get(dataset_id)
        with self._db.write() as conn:
            users = [r[0] for r in conn.execute(
                "SELECT id FROM jobs WHERE status IN ('queued', 'running') "
                "AND json_extract(spec, '$.dataset') = ? ORDER BY created_at",
                (record.id,),
            )]
            if users:
                raise Conflict(
                    f"Dataset {record.id[:12]} is the input of job(s) {', '.join(users[:5])} that "
                    "have not finished. Cancel them or wait, then delete it.",
                    code="dataset_in_use",
                )
            if conn.execute("DELETE FROM datasets WHERE id = ?", (record.id,)).rowcount == 0:
                raise NotFound(f"No dataset with id {record.id!r}.")
            trashed = trash_unreferenced(conn, self._blobs, self._tmp, {record.id})
        return empty_trash(trashed)


def _record(row: Any) -> DatasetRecord:
    return DatasetRecord(
        id=row["id"],
        name=row["name"],
        size=row["size"],
        row_count=row["row_count"],
        columns=tuple(Column.from_dict(c) for c in json.loads(row["columns"])),
        created_at=row["created_at"],
    )
