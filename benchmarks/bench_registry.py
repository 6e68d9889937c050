"""Registry figures, each against a baseline measured in the same run on the same disk.

1. Upload throughput of a ~200 MB model as a ratio to a plain file copy (read, write, fsync).
2. p50/p99 of listing models and of resolving a version with 10,000 versions stored, next to the
   registry's own /health (the HTTP floor of the same server).
3. Peak RSS of the registry process (VmHWM) during a ~1 GB upload: uploads stream, so this must
   stay under 200 MB.

Run: .venv/bin/python benchmarks/bench_registry.py [--quick]
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import joblib
import numpy as np
from sklearn.neighbors import KNeighborsClassifier

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.client import Client  # noqa: E402
from app.config import Paths  # noqa: E402
from app.store import NewVersion, Store  # noqa: E402
from tests.conftest import TOKEN  # noqa: E402
from tests.live import free_port, start_registry, stop  # noqa: E402


def big_model(path: Path, megabytes: int) -> Path:
    """A real estimator with `megabytes` of float64 state (KNN keeps its training set)."""
    rows = megabytes * (1 << 20) // (100 * 8)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((rows, 100))
    y = (X[:, 0] > 0).astype(np.int64)
    joblib.dump(KNeighborsClassifier(n_neighbors=1, algorithm="brute").fit(X, y), path)
    return path


def plain_copy(src: Path, dst: Path) -> float:
    start = time.perf_counter()
    with src.open("rb") as fin, dst.open("wb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)
        fout.flush()
        os.fsync(fout.fileno())
    return time.perf_counter() - start


def drop_page_cache_hint(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def timed_gets(port: int, path: str, n: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port)
    times = []
    for _ in range(n):
        start = time.perf_counter()
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        times.append(time.perf_counter() - start)
        assert response.status == 200, (path, response.status)
    conn.close()
    return times


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1000


def fill_versions(home: Path, count: int) -> None:
    """10,000 versions of one model and 200 other models, written straight into the store."""
    store = Store(Paths(home))
    temp, sha, size = store.blobs.receive(iter([b"shared bytes of every bulk version"]))
    store.add_version("big", temp, sha, size, NewVersion(format="skops"))
    now = time.time()
    with store.db.write() as conn:
        model_id = conn.execute("SELECT id FROM models WHERE name = 'big'").fetchone()[0]
        conn.executemany(
            "INSERT INTO versions (model_id, version, status, format, sha256, size, created_at, "
            "updated_at) VALUES (?, ?, 'ready', 'skops', ?, ?, ?, ?)",
            [(model_id, v, sha, size, now, now) for v in range(2, count + 1)],
        )
        conn.execute("UPDATE models SET next_version = ? WHERE id = ?", (count + 1, model_id))
    store.set_alias("big", "production", count // 2)
    for i in range(200):
        store.create_model(f"model-{i:03d}", tags={"team": f"t{i % 7}"})
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller files, fewer requests")
    args = parser.parse_args()
    upload_mb, huge_mb, requests = (50, 250, 300) if args.quick else (200, 1024, 2000)

    with tempfile.TemporaryDirectory(prefix="bench-registry-", dir=Path.home()) as tmp_name:
        tmp = Path(tmp_name)
        home = tmp / "home"
        fill_versions(home, 10_000)
        port = free_port()
        proc = start_registry(home, port, MODELDEPOT_MAX_UPLOAD_BYTES="4G")
        client = Client(f"http://127.0.0.1:{port}", TOKEN)
        try:
            print(f"== latency, sequential keep-alive GETs, {requests} each (ms)")
            for label, path in [
                ("health (HTTP floor)", "/api/v1/health"),
                ("list models (page of 100)", "/api/v1/models"),
                ("search q=model-1 tag", "/api/v1/models?q=model-1&tag=team:t1"),
                ("resolve version 7777", "/api/v1/models/big/versions/7777"),
                ("resolve latest", "/api/v1/models/big/versions/latest"),
                ("resolve alias", "/api/v1/models/big/versions/production"),
                ("list versions (page)", "/api/v1/models/big/versions?limit=100"),
            ]:
                times = timed_gets(port, path, requests)
                print(f"{label:<28} p50 {pct(times, 50):7.2f}  p99 {pct(times, 99):7.2f}")

            model = big_model(tmp / "upload.joblib", upload_mb)
            size_mb = model.stat().st_size / 1e6
            copies, uploads = [], []
            for i in range(3):
                drop_page_cache_hint(model)
                copies.append(plain_copy(model, tmp / f"copy-{i}"))
                (tmp / f"copy-{i}").unlink()
                drop_page_cache_hint(model)
                start = time.perf_counter()
                client.upload("upload", model, {"trust": True})
                uploads.append(time.perf_counter() - start)
            copy_s, upload_s = statistics.median(copies), statistics.median(uploads)
            print(f"\n== upload of a {size_mb:.0f} MB joblib model (median of 3)")
            print(f"plain copy   {size_mb / copy_s:8.1f} MB/s")
            print(
                f"upload       {size_mb / upload_s:8.1f} MB/s  "
                f"(ratio to copy {copy_s / upload_s:.2f}; includes the safety scan and load)"
            )
            model.unlink()

            huge = big_model(tmp / "huge.joblib", huge_mb)
            before = peak_rss_mb(proc.pid)
            client.upload("huge", huge, {"trust": True})
            print(
                f"\n== peak RSS of the registry (VmHWM) around a "
                f"{huge.stat().st_size / 1e9:.2f} GB upload"
            )
            print(f"before {before:.0f} MB, after {peak_rss_mb(proc.pid):.0f} MB (goal < 200 MB)")
        finally:
            stop(proc)


if __name__ == "__main__":
    main()
