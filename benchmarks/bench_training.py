"""Training figures, each against a baseline measured in the same run on the same machine.

1. Wall time of 8 small training jobs through the registry's process pool (pool_size 2, the
   workers already started) against the same 8 jobs run one after another in this process by
   the same worker function (`train.run`), as a ratio: the real parallelism the pool gives.
2. p50/p99 latency of `GET /api/v1/models` on that registry while the 8 jobs train, next to the
   same request on the idle registry just before.

Run: .venv/bin/python benchmarks/bench_training.py [--quick] [--jobs 8] [--pool 2]
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.client import Client  # noqa: E402
from app.config import Paths  # noqa: E402
from app.store import Store  # noqa: E402
from app.training import train  # noqa: E402
from app.training.spec import TrainRequest, validate_train  # noqa: E402
from app.training.tabular import inspect_csv  # noqa: E402
from tests.conftest import TOKEN  # noqa: E402
from tests.live import free_port, start_registry, stop  # noqa: E402
from tests.registry.jobdata import FINAL, classification_csv  # noqa: E402


def job_body(dataset: str, trees: int, i: int) -> dict[str, Any]:
    return {"kind": "train", "model": f"bench-{i}", "dataset": dataset, "target": "label",
            "estimator": "sklearn.ensemble.RandomForestClassifier",
            "params": {"n_estimators": trees}, "random_state": i}


def sequential(home: Path, csv: Path, bodies: list[dict[str, Any]]) -> float:
    """The baseline: the same jobs, one after another, in this one process."""
    store = Store(Paths(home))
    temp, sha, size = store.blobs.receive(iter([csv.read_bytes()]))
    summary = inspect_csv(temp)
    store.datasets.add(temp, sha, size, csv.name, summary.row_count, summary.columns)
    ids = []
    for body in bodies:
        spec, model = validate_train(store, TrainRequest.model_validate({**body, "dataset": sha}))
        ids.append(store.jobs.create("train", spec, model).id)
    start = time.perf_counter()
    for job_id in ids:
        train.run(job_id, str(home))
    elapsed = time.perf_counter() - start
    failed = [j.error for j in (store.jobs.get(i) for i in ids) if j.status != "succeeded"]
    assert not failed, failed
    store.close()
    return elapsed


class Sampler(threading.Thread):
    """Sequential keep-alive GETs of one path until stopped; latencies in seconds."""

    def __init__(self, port: int, path: str) -> None:
        super().__init__(daemon=True)
        self.port, self.path = port, path
        self.times: list[float] = []
        self.stop_flag = threading.Event()

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port)
        while not self.stop_flag.is_set():
            start = time.perf_counter()
            conn.request("GET", self.path)
            response = conn.getresponse()
            response.read()
            self.times.append(time.perf_counter() - start)
            assert response.status == 200
            time.sleep(0.02)  # a dashboard-like client (~50 requests/s), not a flood
        conn.close()


def sample_for(port: int, seconds: float) -> list[float]:
    sampler = Sampler(port, "/api/v1/models")
    sampler.start()
    time.sleep(seconds)
    sampler.stop_flag.set()
    sampler.join()
    return sampler.times


def wait_all(client: Client, ids: list[str]) -> None:
    """One list request every 0.2 s until every job has ended (they must all succeed)."""
    pending = set(ids)
    while pending:
        time.sleep(0.2)
        for job in client.request("GET", "/api/v1/jobs", query={"limit": 1000})["jobs"]:
            if job["id"] in pending and job["status"] in FINAL:
                assert job["status"] == "succeeded", job
                pending.discard(job["id"])


def _seconds(job: dict[str, Any]) -> float:
    """started_at to finished_at of a job, from its ISO timestamps."""
    from datetime import datetime

    start, end = (datetime.fromisoformat(job[k].replace("Z", "+00:00"))
                  for k in ("started_at", "finished_at"))
    return (end - start).total_seconds()


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller jobs")
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--pool", type=int, default=2)
    args = parser.parse_args()
    rows, trees = (1500, 60) if args.quick else (3000, 150)

    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp_name:
        tmp = Path(tmp_name)
        csv = tmp / "data.csv"
        csv.write_bytes(classification_csv(rows=rows, features=10, seed=7))
        bodies = [job_body("", trees, i) for i in range(args.jobs)]
        print(f"== {args.jobs} jobs: RandomForestClassifier, {trees} trees, {rows} rows x 10 "
              "features, each fitted, evaluated and saved as skops")

        import sklearn.ensemble  # noqa: F401  (the baseline must not time the import)

        seq = sequential(tmp / "seq-home", csv, bodies)
        print(f"one process, one after another   {seq:6.2f} s  ({seq / args.jobs:.2f} s a job)")

        port = free_port()
        # Twins off: each trained version would queue an ONNX compile job in the same pool,
        # work the one-process baseline does not do.
        proc = start_registry(tmp / "pool-home", port, MODELDEPOT_POOL_SIZE=str(args.pool),
                              MODELDEPOT_TWINS="false")
        client = Client(f"http://127.0.0.1:{port}", TOKEN)
        try:
            dataset = client.upload_dataset(csv)["id"]
            start = time.perf_counter()
            warm = [client.request("POST", "/api/v1/jobs", json_body={
                **job_body(dataset, 5, 100 + i), "model": "warm-up"})["id"]
                for i in range(args.pool)]
            wait_all(client, warm)
            print(f"pool start (spawn {args.pool} workers, import scikit-learn)  "
                  f"{time.perf_counter() - start:6.2f} s  (not counted below)")
            idle = sample_for(port, 3.0)

            sampler = Sampler(port, "/api/v1/models")
            sampler.start()
            start = time.perf_counter()
            ids = [client.request("POST", "/api/v1/jobs",
                                  json_body={**body, "dataset": dataset})["id"]
                   for body in bodies]
            wait_all(client, ids)
            pooled = time.perf_counter() - start
            sampler.stop_flag.set()
            sampler.join()
            held = [_seconds(client.request("GET", f"/api/v1/jobs/{i}")) for i in ids]
        finally:
            stop(proc)

        print(f"registry pool of {args.pool}, over HTTP      {pooled:6.2f} s  "
              f"(speed-up {seq / pooled:.2f}x of an ideal {args.pool}x; a job held its worker "
              f"{statistics.mean(held):.2f} s on average)")
        print("\n== GET /api/v1/models latency (ms), sequential keep-alive requests")
        busy = sampler.times
        print(f"idle registry      n={len(idle):5d}  p50 {pct(idle, 50):7.2f}  "
              f"p99 {pct(idle, 99):7.2f}")
        print(f"while jobs train   n={len(busy):5d}  p50 {pct(busy, 50):7.2f}  "
              f"p99 {pct(busy, 99):7.2f}")


if __name__ == "__main__":
    main()
