"""Requests per second with `inference_workers` = 1 and 2: a RandomForest (100 trees, depth 10,
20 features) served by scikit-learn (no twin), one row per request, wrk at 32 connections.

The baseline is one worker measured in the same run. Goal (issue 18): 2 workers >= 1.7x on this
2-core machine. Nothing is pinned: the workers and wrk share the cores, as they would in use.
Rounds alternate 1 and 2 workers; the medians are printed.

Run: .venv/bin/python benchmarks/bench_workers.py [--rounds N] [--seconds S]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_inference import LUA, THREAD_ENV, free_port  # noqa: E402


def store_forest(home: Path) -> list[float]:
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    from app.config import Paths
    from app.formats.signature import signature_from_estimator
    from app.store import NewVersion, Store
    from tests.models import write_skops

    X, y = make_classification(n_samples=3000, n_features=20, n_informative=10, random_state=0)
    model = RandomForestClassifier(n_estimators=100, max_depth=10, random_state=0).fit(X, y)
    store = Store(Paths(home))
    path = write_skops(home.parent / "rf.skops", model)
    temp, sha, size = store.blobs.receive(iter([path.read_bytes()]))
    store.add_version("rf", temp, sha, size, NewVersion(
        format="skops", signature=signature_from_estimator(model).to_dict()))
    store.set_alias("rf", "production", 1)
    store.close()
    return [float(v) for v in X[0].round(4)]


def start(home: Path, port: int, workers: int) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, **THREAD_ENV, "MODELDEPOT_HOME": str(home), "PYTHONPATH": str(ROOT),
           "MODELDEPOT_TWINS": "false", "MODELDEPOT_INFERENCE_WORKERS": str(workers)}
    procs = [subprocess.Popen([sys.executable, "-m", "app", "inference", "--inference-port",
                               str(port), "--log-level", "warning"], env=env,
                              stdout=subprocess.DEVNULL) for _ in range(workers)]
    deadline = time.monotonic() + 60
    while listening(port) < workers:
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            raise RuntimeError("the workers did not start")
        time.sleep(0.05)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=5):
        pass
    return procs


def listening(port: int) -> int:
    with open("/proc/net/tcp") as table:
        return sum(1 for line in list(table)[1:] if line.split()[3] == "0A"
                   and int(line.split()[1].split(":")[1], 16) == port)


def wrk(url: str, script: Path, seconds: int) -> tuple[float, int]:
    out = subprocess.run(["wrk", "-t1", "-c32", f"-d{seconds}s", "-s", str(script), url],
                         capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, int(errors.group(1)) if errors else 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is missing: apt-get install wrk", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        home = work / "home"
        row = store_forest(home)
        body = work / "body.json"
        body.write_text(json.dumps({"instances": [row]}))
        script = work / "post.lua"
        script.write_text(LUA.format(body=body))
        results: dict[int, list[float]] = {1: [], 2: []}
        for _ in range(args.rounds):
            for workers in (1, 2):
                port = free_port()
                procs = start(home, port, workers)
                try:
                    url = f"http://127.0.0.1:{port}/v1/models/rf/predict"
                    wrk(url, script, 1)  # warm up
                    rps, errors = wrk(url, script, args.seconds)
                    if errors:
                        raise RuntimeError(f"{errors} failed requests with {workers} workers")
                    results[workers].append(rps)
                finally:
                    for p in procs:
                        p.terminate()
                    for p in procs:
                        p.wait(10)
    one, two = statistics.median(results[1]), statistics.median(results[2])
    print(f"RF(100) by scikit-learn, 1 row, wrk -c32, {os.cpu_count()} cores")
    print(f"1 worker  (baseline): {one:8.0f} req/s  {[round(r) for r in results[1]]}")
    print(f"2 workers:            {two:8.0f} req/s  {[round(r) for r in results[2]]}")
    print(f"ratio {two / one:.2f}x (goal >= 1.70x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
