"""`modeldepot doctor`: check the database and every model file, and say what is wrong."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.store.blobs import file_sha256
from app.store.catalog import Store
from app.store.records import VersionRecord


@dataclass
class DoctorReport:
    integrity: str = ""
    foreign_key_errors: int = 0
    checked: int = 0
    ok: int = 0
    bytes_checked: int = 0
    problems: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return self.integrity == "ok" and not self.foreign_key_errors and not self.problems

    def render(self) -> str:
        lines = [
            f"database integrity: {self.integrity}",
            f"foreign key errors: {self.foreign_key_errors}",
            f"model files checked: {self.checked} ({self.bytes_checked / 1e6:.1f} MB), "
            f"{self.ok} match their sha256",
        ]
        lines += [f"PROBLEM: {p}" for p in self.problems]
        lines += [f"marked: {r}" for r in self.repaired]
        lines.append("healthy" if self.healthy else "NOT healthy: see the problems above")
        return "\n".join(lines)


def run_doctor(store: Store, *, mark: bool = True) -> DoctorReport:
    """Hash every stored file; with `mark`, record the verdict in each version's status."""
    report = DoctorReport()
    conn = store.db.connection()
    report.integrity = "; ".join(r[0] for r in conn.execute("PRAGMA integrity_check"))
    report.foreign_key_errors = len(conn.execute("PRAGMA foreign_key_check").fetchall())
    rows = conn.execute(
        "SELECT v.id, v.version, v.status, v.sha256, m.name FROM versions v "
        "JOIN models m ON m.id = v.model_id WHERE v.status IN ('ready', 'corrupt') "
        "ORDER BY m.name, v.version"
    ).fetchall()
    for row in rows:
        label = f"{row['name']} version {row['version']}"
        path = store.blobs.path(row["sha256"])
        report.checked += 1
        report.bytes_checked += path.stat().st_size if path.is_file() else 0
        problem = file_problem(store, row["sha256"])
        if problem is None:
            report.ok += 1
            if row["status"] == "corrupt" and mark:
                store.set_status(row["id"], "ready")
                report.repaired.append(f"{label}: ready again (its file matches)")
            continue
        report.problems.append(f"{label}: {problem}")
        if row["status"] == "ready" and mark:
            store.set_status(row["id"], "corrupt", problem[0].upper() + problem[1:] + ".")
            report.repaired.append(f"{label}: corrupt (not served)")
    return report


def file_problem(store: Store, sha256: str) -> str | None:
    """What is wrong with a version's stored file, or None when it matches its sha256."""
    path = store.blobs.path(sha256)
    if not path.is_file():
        return "its file is missing"
    return None if file_sha256(path) == sha256 else "its file no longer matches its sha256"


def verify_version(store: Store, model: str, ref: str) -> VersionRecord:
    """Hash one ready (or corrupt) version's file and record the verdict in its status, as the
    doctor does for all: what the registry runs when a load found a mismatch."""
    record = store.get_version(model, ref)
    if record.status not in ("ready", "corrupt") or record.sha256 is None:
        return record
    problem = file_problem(store, record.sha256)
    if problem is not None and record.status == "ready":
        store.set_status(record.id, "corrupt", problem[0].upper() + problem[1:] + ".")
    elif problem is None and record.status == "corrupt":
        store.set_status(record.id, "ready")
    return store.get_version(model, ref)
