"""`modeldepot doctor`: check the database and every model file, and say what is wrong."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.store.blobs import file_sha256
from app.store.catalog import Store


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
        if not path.is_file():
            good, why = False, "its file is missing"
        else:
            report.bytes_checked += path.stat().st_size
            good = file_sha256(path) == row["sha256"]
            why = "its file no longer matches its sha256"
        if good:
            report.ok += 1
            if row["status"] == "corrupt" and mark:
                store.set_status(row["id"], "ready")
                report.repaired.append(f"{label}: ready again (its file matches)")
            continue
        report.problems.append(f"{label}: {why}")
        if row["status"] == "ready" and mark:
            store.set_status(row["id"], "corrupt", why[0].upper() + why[1:] + ".")
            report.repaired.append(f"{label}: corrupt (not served)")
    return report
