"""Many models on a small box: 50 stored production models, cache_memory_mb=256.

Stores 50 models of the four kinds of bench_load.py (LR, RF(100), HistGradientBoosting, a
20-feature pipeline; each with its load cache, served by scikit-learn), starts
`modeldepot inference` with cache_memory_mb=256 and cycles one-row requests over the models, one
at a time. Prints, over time, the inference process's RSS against the budget (RSS above what the
process held before its first model load, the level the cache budgets from; /v1/resources), and
for every request that found its model evicted, its latency beside that model's load time as the
server logged it.

Goals (issue 18): RSS above the pre-model level stays <= the budget; the first request for an
evicted model answers within its load time + 50 ms.

Run: .venv/bin/python benchmarks/bench_many_models.py [--rounds N] [--models N] [--budget MB]
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
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_inference import THREAD_ENV, free_port  # noqa: E402
from benchmarks.bench_startup import stored_models  # noqa: E402

LOADED = re.compile(r"loaded (\S+) version \d+ \(.*?, (\d+) ms")


def get(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=60) as r:
        return json.loads(r.read())


def predict(port: int, name: str) -> float:
    body = json.dumps({"instances": [[0.1] * 20]}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/models/{name}/predict",
                                     body, {"Content-Type": "application/json"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as r:
        r.read()
    return time.perf_counter() - started


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3, help="passes over every model")
    parser.add_argument("--budget", type=int, default=256, help="cache_memory_mb")
    args = parser.parse_args()
    home = stored_models(args.models)
    log_path = home.parent / f"{home.name}-inference.log"
    port = free_port()
    env = {**os.environ, **THREAD_ENV, "MODELDEPOT_HOME": str(home), "PYTHONPATH": str(ROOT),
           "MODELDEPOT_TWINS": "false", "MODELDEPOT_CACHE_MEMORY_MB": str(args.budget)}
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "app", "inference", "--inference-port",
                                 str(port), "--log-level", "info"], env=env,
                                stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + 120
        while len(LOADED.findall(log_path.read_text())) < args.models:  # the preload
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the preload did not finish: {log_path.read_text()[-2000:]}")
            time.sleep(0.2)
        base = get(port, "/v1/resources")["resident_bytes_before_models"] / (1 << 20)
        print(f"{args.models} models, cache_memory_mb={args.budget}; inference RSS before its "
              f"first model load {base:.0f} MB, so its RSS may reach {base + args.budget:.0f} MB")
        print(f"after the preload: RSS {rss_mb(proc.pid):.0f} MB, "
              f"{get(port, '/v1/resources')['loaded_models']} models loaded")
        seen = len(LOADED.findall(log_path.read_text()))
        reloads: list[tuple[float, float]] = []
        peak = 0.0
        for round_ in range(args.rounds):
            samples = []
            for n in range(args.models):
                latency = predict(port, f"model-{n}")
                loads = LOADED.findall(log_path.read_text())
                for name, ms in loads[seen:]:
                    if name == f"model-{n}":  # this request found its model evicted
                        reloads.append((latency * 1000, float(ms)))
                seen = len(loads)
                rss = rss_mb(proc.pid)
                peak = max(peak, rss)
                samples.append(rss)
            use = get(port, "/v1/resources")
            print(f"round {round_ + 1}: RSS min {min(samples):.0f} / median "
                  f"{statistics.median(samples):.0f} / max {max(samples):.0f} MB (above the "
                  f"pre-model level: max {max(samples) - base:.0f} MB, budget {args.budget}); "
                  f"{use['loaded_models']} loaded, charged {use['loaded_bytes'] / (1 << 20):.0f} "
                  "MB")
        print(f"peak RSS above the pre-model level: {peak - base:.0f} MB of {args.budget} MB: "
              f"{'OK' if peak - base <= args.budget else 'OVER'}")
        if reloads:
            extra = [latency - load for latency, load in reloads]
            print(f"{len(reloads)} requests found their model evicted: latency minus its load "
                  f"time median {statistics.median(extra):.1f} ms, max {max(extra):.1f} ms "
                  f"(goal <= 50 ms); load time median "
                  f"{statistics.median(load for _, load in reloads):.0f} ms")
        else:
            print("no request found its model evicted (every model fits the budget)")
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(home, ignore_errors=True)
        log_path.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
