"""Mirror figures, each printed beside its goal (docs/mirrors.md), between real processes:

1. promotion to serving: a central registry and an edge registry + inference; the edge follows
   knn@production with every_s=1; each round puts a new ~5 MB skops model in the central store,
   moves the alias over the API, and times until the edge's inference answers a prediction of
   the edge's production version of that file (goal <= 3 s at p50);
2. transfer: one file fetched by the mirror's upstream client (Range-capable, fsynced) as a
   ratio to a plain http.client download of the same URL from the same central process into a
   fsynced file (goal >= 0.5);
3. the central's conditional manifest route: 304 answers/s with wrk (1 thread, 16 connections),
   and the edge boxes that rate carries at a 60 s interval (goal >= 100,000);
4. MLflow alias move to serving: a real `mlflow server` (SQLite store, local artifact root; the
   `mlflow` of the test extra), the edge following iris@champion of it with every_s=1; each
   round moves the alias to a newly registered skops version over MLflow's REST API and times
   until the edge's inference answers a prediction of that version (goal <= interval + 3 s).

Run: .venv/bin/python benchmarks/bench_mirror.py [--rounds 5] [--model-mb 5] [--transfer-mb 500]
     [--only-mlflow]
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.client import Client  # noqa: E402
from app.config import Paths  # noqa: E402
from app.fleet.upstream import ModelDepotUpstream  # noqa: E402
from app.store import NewVersion, Store  # noqa: E402
from tests.conftest import TOKEN  # noqa: E402
from tests.live import free_ports, start_inference, start_registry, stop  # noqa: E402

MLFLOW_EVERY_S = 1.0


def knn_skops(path: Path, megabytes: float, seed: int) -> Path:
    """A real estimator with `megabytes` of float64 state (KNN keeps its training set)."""
    import skops.io
    from sklearn.neighbors import KNeighborsClassifier

    rows = max(10, int(megabytes * (1 << 20)) // (8 * 8))
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, 8))
    skops.io.dump(KNeighborsClassifier(n_neighbors=1).fit(X, (X[:, 0] > 0).astype(np.int64)),
                  path)
    return path


def put_version(home: Path, name: str, path: Path, fmt: str) -> tuple[int, str]:
    """Straight into the central store (the central box's own upload path is not measured)."""
    store = Store(Paths(home))
    try:
        with path.open("rb") as f:
            temp, sha, size = store.blobs.receive(iter(lambda: f.read(1 << 20), b""))
        record = store.add_version(name, temp, sha, size, NewVersion(format=fmt))
        return record.version, sha
    finally:
        store.close()


def promotion_rounds(central: Client, central_home: Path, edge: Client, edge_inf: Client,
                     tmp: Path, rounds: int, megabytes: float) -> list[float]:
    edge.request("POST", "/api/v1/mirrors", json_body={
        "upstream": central.base_url, "models": ["knn@production"], "every_s": 1})
    rows = {"instances": np.zeros((1, 8)).tolist()}
    times = []
    for i in range(rounds + 1):  # round 0 warms the edge (zygote, first model); not counted
        number, sha = put_version(central_home, "knn",
                                  knn_skops(tmp / f"k{i}.skops", megabytes, i), "skops")
        start = time.perf_counter()
        central.request("PUT", "/api/v1/models/knn/aliases/production",
                        json_body={"version": number})
        while True:
            try:
                served = edge.request("GET", "/api/v1/models/knn/versions/production")
                if served["sha256"] == sha:
                    edge_inf.request("POST", "/v1/models/knn/versions/production/predict",
                                     json_body=rows)
                    break
            except Exception:  # not there yet
                pass
            time.sleep(0.02)
        if i:
            times.append(time.perf_counter() - start)
    return times


def plain_download(url: str, sha: str, out: Path) -> float:
    host, port = url.removeprefix("http://").split(":")
    start = time.perf_counter()
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    conn.request("GET", f"/api/v1/blobs/{sha}")
    response = conn.getresponse()
    with out.open("wb") as f:
        shutil.copyfileobj(response, f, 1 << 20)
        f.flush()
        os.fsync(f.fileno())
    conn.close()
    return time.perf_counter() - start


def transfer_ratio(url: str, central_home: Path, tmp: Path,
                   megabytes: float) -> tuple[float, float, int]:
    blob = tmp / "big.bin"
    _, sha = put_version(central_home, "big", knn_skops(blob, megabytes, 99), "skops")
    size = blob.stat().st_size
    plain = min(plain_download(url, sha, tmp / "plain.bin") for _ in range(2))
    upstream = ModelDepotUpstream(url, None)
    mirrored = []
    for _ in range(2):
        part = tmp / "mirror.part"
        part.unlink(missing_ok=True)
        start = time.perf_counter()
        upstream.fetch(sha, size, part)
        mirrored.append(time.perf_counter() - start)
    return plain, min(mirrored), size


def manifest_304_rate(url: str, seconds: int) -> float:
    etag = Client(url, TOKEN).answer("GET", "/api/v1/bundles/manifest",
                                     query={"model": "knn@production"}).headers["ETag"]
    done = subprocess.run(
        ["wrk", "-t1", "-c16", f"-d{seconds}s", "-H", f"If-None-Match: {etag}",
         f"{url}/api/v1/bundles/manifest?model=knn@production"],
        capture_output=True, text=True, check=True)
    match = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", done.stdout)
    if match is None or non2xx is not None:
        raise RuntimeError(done.stdout)
    return float(match.group(1))


def mlflow_rounds(tmp: Path, edge: Client, edge_inf: Client, rounds: int) -> list[float]:
    """Seconds from each MLflow alias move to the edge serving that version."""
    from tests.mlflow.conftest import MlflowServer, mlflow_side, start_mlflow_server, stop_group

    root = tmp / "mlflow"
    root.mkdir()
    proc, port = start_mlflow_server(root)
    try:
        server = MlflowServer(port, {})
        versions = mlflow_side("log", server.http, "iris", str(rounds + 1))
        server.set_alias("iris", "champion", versions[0])
        mirror = edge.request("POST", "/api/v1/mirrors", json_body={
            "upstream": f"mlflow+{server.http}", "models": ["iris@champion"],
            "every_s": MLFLOW_EVERY_S})
        rows = {"instances": np.zeros((1, 4)).tolist()}
        times = []
        for i, number in enumerate(versions):  # round 0 warms the edge; not counted
            if i:
                server.set_alias("iris", "champion", number)
            start = time.perf_counter()
            while True:
                try:
                    served = edge.request("GET", "/api/v1/models/iris/versions/champion")
                    if served["origin"]["version"] == number:
                        edge_inf.request("POST", "/v1/models/iris/versions/champion/predict",
                                         json_body=rows)
                        break
                except Exception:  # not there yet
                    pass
                time.sleep(0.02)
            if i:
                times.append(time.perf_counter() - start)
        edge.request("DELETE", f"/api/v1/mirrors/{mirror['id']}")  # the other figures alone
        return times
    finally:
        stop_group(proc)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--model-mb", type=float, default=5)
    parser.add_argument("--transfer-mb", type=float, default=500)
    parser.add_argument("--wrk-seconds", type=int, default=10)
    parser.add_argument("--only-mlflow", action="store_true",
                        help="Measure only the MLflow alias move (figure 4).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp_name:
        tmp = Path(tmp_name)
        ports = free_ports(4)
        central_home, edge_home = tmp / "central" / "home", tmp / "edge" / "home"
        procs = []
        try:
            procs.append(start_registry(central_home, ports[0], MODELDEPOT_TWINS="false"))
            procs.append(start_registry(edge_home, ports[1], MODELDEPOT_TWINS="false"))
            procs.append(start_inference(edge_home, ports[2]))
            central = Client(f"http://127.0.0.1:{ports[0]}", TOKEN)
            edge = Client(f"http://127.0.0.1:{ports[1]}", TOKEN)
            edge_inf = Client(f"http://127.0.0.1:{ports[2]}", TOKEN)
            times = mlflow_rounds(tmp, edge, edge_inf, args.rounds)
            print(f"MLflow alias move -> serving on the edge (every {MLFLOW_EVERY_S:g} s, "
                  f"iris skops, {args.rounds} rounds): p50 {statistics.median(times):.2f} s, "
                  f"max {max(times):.2f} s (goal <= {MLFLOW_EVERY_S + 3:g} s)")
            if args.only_mlflow:
                return 0
            times = promotion_rounds(central, central_home, edge, edge_inf, tmp, args.rounds,
                                     args.model_mb)
            print(f"promotion -> serving on the edge (every 1 s, {args.model_mb:g} MB model, "
                  f"{args.rounds} rounds): p50 {statistics.median(times):.2f} s, "
                  f"max {max(times):.2f} s (goal p50 <= 3 s)")
            plain, mirrored, size = transfer_ratio(central.base_url, central_home, tmp,
                                                   args.transfer_mb)
            print(f"transfer of {size / 1e6:.0f} MB: plain download {size / plain / 1e6:.0f} "
                  f"MB/s, mirror fetch {size / mirrored / 1e6:.0f} MB/s, ratio "
                  f"{plain / mirrored:.2f} (goal >= 0.5)")
            rate = manifest_304_rate(central.base_url, args.wrk_seconds)
            print(f"conditional manifest: {rate:.0f} 304 answers/s (wrk -t1 -c16), so "
                  f"{rate * 60:,.0f} edge boxes at a 60 s interval (goal >= 100,000)")
        finally:
            for proc in procs:
                stop(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
