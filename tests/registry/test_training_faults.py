"""Faults with real processes: a worker SIGKILLed mid-fit, a registry stopped and killed mid-job.

Each test drives a real `modeldepot registry` subprocess over HTTP and reads the job rows back
from its SQLite file, which is also where the worker pids are (the API does not show them).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from app.client import Client
from app.training.runner import COLLATERAL, KILLED
from tests.conftest import TOKEN
from tests.live import free_port, process_gone, start_registry, stop
from tests.registry.jobdata import (
    FINAL,
    SLOW_ROWS,
    classification_csv,
    slow_body,
    train_body,
    wait_until,
)


def row(home: Path, job_id: str) -> sqlite3.Row:
    conn = sqlite3.connect(f"file:{home / 'modeldepot.db'}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        result: sqlite3.Row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
    finally:
        conn.close()
    return result


class Registry:
    """One registry subprocess on a data dir, restartable, with a client for its API."""

    def __init__(self, home: Path, pool_size: int) -> None:
        self.home, self.pool_size = home, pool_size
        self.proc: subprocess.Popen[bytes] | None = None
        self.client = Client("http://127.0.0.1:1", TOKEN, timeout=30)

    def start(self) -> None:
        port = free_port()
        self.proc = start_registry(self.home, port, MODELDEPOT_POOL_SIZE=str(self.pool_size))
        self.client = Client(f"http://127.0.0.1:{port}", TOKEN, timeout=30)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        stop(self.proc, sig)

    def submit(self, body: dict[str, Any]) -> str:
        return str(self.client.request("POST", "/api/v1/jobs", json_body=body)["id"])

    def job(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.client.request("GET", f"/api/v1/jobs/{job_id}")
        return result

    def fitting(self, job_id: str, attempts: int = 1) -> bool:
        j = self.job(job_id)
        return j["status"] == "running" and j["step"] == "fit" and j["attempts"] == attempts

    def finished(self, job_id: str, timeout: float = 60) -> dict[str, Any]:
        return wait_until(lambda: (j := self.job(job_id))["status"] in FINAL and j,
                          f"job {job_id} to finish", timeout)


@pytest.fixture
def datasets(tmp_path: Path) -> tuple[Path, Path]:
    slow, quick = tmp_path / "slow.csv", tmp_path / "quick.csv"
    slow.write_bytes(classification_csv(rows=SLOW_ROWS, features=6, seed=3))
    quick.write_bytes(classification_csv(rows=120, seed=4))
    return slow, quick


@pytest.mark.slow
def test_sigkilled_worker_fails_its_job_and_the_pool_recovers(
    tmp_path: Path, datasets: tuple[Path, Path]
) -> None:
    registry = Registry(tmp_path / "home", pool_size=2)
    registry.start()
    try:
        slow = registry.client.upload_dataset(datasets[0])["id"]
        quick = registry.client.upload_dataset(datasets[1])["id"]
        victim = registry.submit(slow_body(slow, model="victim"))
        bystander = registry.submit(slow_body(slow, model="bystander", trees=300))
        wait_until(lambda: registry.fitting(victim) and registry.fitting(bystander),
                   "both jobs fitting")
        os.kill(row(registry.home, victim)["worker_pid"], signal.SIGKILL)

        failed = registry.finished(victim)
        assert failed["status"] == "failed" and failed["error"] == KILLED
        assert failed["version"] is None
        # The bystander's worker was alive: it was put back and ran again in the new pool.
        survived = registry.finished(bystander, timeout=90)
        assert survived["status"] == "succeeded", survived
        assert survived["attempts"] == 1  # the broken pool did not use up its retry
        log = registry.client.request("GET", f"/api/v1/jobs/{bystander}/log")["lines"]
        assert COLLATERAL in [entry["line"] for entry in log], [e["line"] for e in log]
        # The rebuilt pool takes new work.
        after = registry.finished(registry.submit(train_body(quick, model="after")))
        assert after["status"] == "succeeded", after
        assert registry.proc is not None and registry.proc.poll() is None
    finally:
        registry.stop()


@pytest.mark.slow
def test_registry_restarts_mid_job_and_every_job_ends(
    tmp_path: Path, datasets: tuple[Path, Path]
) -> None:
    registry = Registry(tmp_path / "home", pool_size=1)
    registry.start()
    try:
        slow = registry.client.upload_dataset(datasets[0])["id"]
        quick = registry.client.upload_dataset(datasets[1])["id"]
        long_job = registry.submit(slow_body(slow, model="long"))
        waiting = registry.submit(train_body(quick, model="waiting"))
        wait_until(lambda: registry.fitting(long_job), "the long job fitting")
        first_worker = row(registry.home, long_job)["worker_pid"]

        registry.stop(signal.SIGTERM)  # graceful: the pool's workers are ended, rows kept
        assert row(registry.home, long_job)["status"] == "running"
        assert row(registry.home, waiting)["status"] == "queued"
        assert process_gone(first_worker)

        registry.start()  # the long job runs once more; the waiting one stays in line
        wait_until(lambda: registry.fitting(long_job, attempts=2), "the retry fitting")
        assert registry.job(waiting)["status"] == "queued"
        second_worker = row(registry.home, long_job)["worker_pid"]
        registry.stop(signal.SIGKILL)  # a crash: nobody ends the worker but itself
        wait_until(lambda: process_gone(second_worker), "the orphaned worker to exit", timeout=10)

        registry.start()
        failed = registry.finished(long_job)
        assert failed["status"] == "failed" and failed["attempts"] == 2
        assert failed["error"] == ("The registry stopped while this job ran, 2 times; it is "
                                   "not retried again.")
        resumed = registry.finished(waiting)
        assert resumed["status"] == "succeeded" and resumed["attempts"] == 1

        def none_left() -> bool:  # including the compile job the new version queued
            return all(registry.client.request("GET", "/api/v1/jobs",
                                               query={"status": status})["jobs"] == []
                       for status in ("queued", "running"))

        wait_until(none_left, "every job to end")
    finally:
        registry.stop()
