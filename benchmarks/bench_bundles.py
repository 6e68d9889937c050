"""Bundle figures, each against a baseline measured in the same run on the same disk.

A signed bundle of about 1 GB (four KNN models in joblib files, whose state is their training
set) travels from one real registry to another:
1. export throughput (GET /api/v1/bundles streamed into a file, fsynced) as a ratio to a plain
   file copy of the bundle with fsync (goal >= 0.5);
2. import throughput (POST /api/v1/bundles: signature, every file hashed into the store, every
   version inspected by content, one commit) as a ratio to the same copy (goal >= 0.3);
3. peak RSS of the importing registry (VmHWM) during that import (goal < 200 MB).

Run: .venv/bin/python benchmarks/bench_bundles.py [--quick]   (--quick: about 256 MB)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_registry import big_model, drop_page_cache_hint, peak_rss_mb, plain_copy  # noqa: E402

from app.client import Client  # noqa: E402
from app.config import Paths  # noqa: E402
from app.fleet import keys  # noqa: E402
from app.store import NewVersion, Store  # noqa: E402
from tests.conftest import TOKEN  # noqa: E402
from tests.live import free_ports, start_registry, stop  # noqa: E402

MODELS = 4


def publish(home: Path, tmp: Path, megabytes: int) -> None:
    """MODELS joblib models of `megabytes` each, straight into the publisher's store."""
    store = Store(Paths(home))
    try:
        for i in range(MODELS):
            path = big_model(tmp / f"m{i}.joblib", megabytes + i)  # sizes differ: 4 files
            with path.open("rb") as f:
                temp, sha, size = store.blobs.receive(iter(lambda f=f: f.read(1 << 20), b""))
            store.add_version(f"knn{i}", temp, sha, size,
                              NewVersion(format="pickle", format_detail="joblib"))
            store.set_alias(f"knn{i}", "production", 1)
            path.unlink()
    finally:
        store.close()


def export_to(client: Client, out: Path) -> float:
    drop_page_cache_hint_dir(out.parent)
    start = time.perf_counter()
    with out.open("wb") as f:
        client.request("GET", "/api/v1/bundles",
                       query={"model": [f"knn{i}" for i in range(MODELS)]}, sink=f)
        f.flush()
        os.fsync(f.fileno())
    return time.perf_counter() - start


def drop_page_cache_hint_dir(folder: Path) -> None:
    for blob in folder.rglob("*"):
        if blob.is_file():
            drop_page_cache_hint(blob)


def chunks(path: Path) -> object:
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            yield chunk


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="a bundle of about 256 MB")
    args = parser.parse_args()
    megabytes = 64 if args.quick else 256

    with tempfile.TemporaryDirectory(prefix="bench-bundles-", dir=Path.home()) as tmp_name:
        tmp = Path(tmp_name)
        a_home, b_home = tmp / "a" / "home", tmp / "b" / "home"
        publish(a_home, tmp, megabytes)
        key = keys.create_key(Paths(a_home), "central")
        keys.trust_key(Paths(b_home), key.line)
        ports = free_ports(2)
        env = {"MODELDEPOT_TWINS": "false", "MODELDEPOT_MAX_UPLOAD_BYTES": "4G"}
        a = start_registry(a_home, ports[0], **env)
        b = start_registry(b_home, ports[1], **env)
        try:
            publisher = Client(f"http://127.0.0.1:{ports[0]}", TOKEN)
            importer = Client(f"http://127.0.0.1:{ports[1]}", TOKEN)
            bundle = tmp / "models.mdbundle"
            exports = []
            for _ in range(3):
                drop_page_cache_hint_dir(a_home / "blobs")
                exports.append(export_to(publisher, bundle))
            size_mb = bundle.stat().st_size / 1e6
            copies = []
            for i in range(3):
                drop_page_cache_hint(bundle)
                copies.append(plain_copy(bundle, tmp / f"copy-{i}"))
                (tmp / f"copy-{i}").unlink()
            copy_s, export_s = statistics.median(copies), statistics.median(exports)

            drop_page_cache_hint(bundle)
            before = peak_rss_mb(b.pid)
            start = time.perf_counter()
            report = importer.request(
                "POST", "/api/v1/bundles", body=chunks(bundle),
                headers={"Content-Type": "application/x-tar",
                         "Content-Length": str(bundle.stat().st_size)})
            import_s = time.perf_counter() - start
            assert len(report["added"]) == MODELS and report["publisher"]["key"] == key.key_id
            after = peak_rss_mb(b.pid)

            print(f"== a signed bundle of {MODELS} joblib models, {size_mb:.0f} MB")
            print(f"plain copy + fsync  {size_mb / copy_s:8.1f} MB/s  (median of 3)")
            print(f"export              {size_mb / export_s:8.1f} MB/s  "
                  f"ratio to copy {copy_s / export_s:.2f} (goal >= 0.5; median of 3)")
            print(f"import              {size_mb / import_s:8.1f} MB/s  "
                  f"ratio to copy {copy_s / import_s:.2f} (goal >= 0.3; once: a second import "
                  "would find every version present)")
            print(f"registry peak RSS (VmHWM) before the import {before:.0f} MB, after "
                  f"{after:.0f} MB (goal < 200 MB)")
        finally:
            stop(a)
            stop(b)


if __name__ == "__main__":
    main()
