"""What loading a stored version costs, beside `joblib.load` of the same estimator.

For LR, RF(100), HistGradientBoosting and a 20-feature pipeline: each is stored as a skops
version in a real store, its compile job body writes the load cache (twin=False), and then:

- baseline: `joblib.load` of the same estimator from a local file;
- cached: what inference does with the load cache: read the blob, sha256, restricted unpickle,
  check_structures (app/inference/loaded.py _load_cached); for LR, read and check its arrays
  (_read_linear: the linear cache is an .npz, app/formats/linear.py); neither warms up;
- load_version: the whole of inference's load (also hashes the served file, warms up);
- skops: the served file's load without the cache (before this change, every load).

Goal (issue 18): cached <= 1.2x joblib.load. Best of --runs runs each.

Run: .venv/bin/python benchmarks/bench_load.py [--runs N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def models() -> dict[str, Any]:
    from sklearn.datasets import make_classification
    from sklearn.decomposition import PCA
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = make_classification(n_samples=2000, n_features=20, n_informative=8, random_state=0)
    return {
        "LR": LogisticRegression(max_iter=500).fit(X, y),
        "RF(100)": RandomForestClassifier(100, random_state=0).fit(X, y),
        "HistGradientBoosting": HistGradientBoostingClassifier(random_state=0).fit(X, y),
        "pipeline (20 features)": make_pipeline(StandardScaler(), PCA(10),
                                                LogisticRegression()).fit(X, y),
    }


def best(fn: Callable[[], Any], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    import joblib
    import skops.io

    from app.config import Paths
    from app.formats.predictor import load_predictor
    from app.formats.signature import signature_from_estimator
    from app.inference.loaded import _load_cached, _read_linear, load_version
    from app.store import NewVersion, Store
    from app.training.twin_build import compile_version

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = Store(Paths(root / "home"))
        print(f"{'model':24} {'joblib.load':>12} {'cached':>9} {'ratio':>6} "
              f"{'load_version':>13} {'skops':>9}")
        for name, model in models().items():
            local = root / f"{len(name)}.joblib"
            joblib.dump(model, local)
            served = root / f"{len(name)}.skops"
            skops.io.dump(model, served)
            temp, sha, size = store.blobs.receive(iter([served.read_bytes()]))
            slug = "m" + str(abs(hash(name)))
            signature = signature_from_estimator(model)
            record = store.add_version(slug, temp, sha, size, NewVersion(
                format="skops", signature=signature.to_dict()))
            compile_version(store, record.id, twin=False)
            record = store.get_version(slug, 1)
            assert record.load_cache_sha256, "no load cache was written"

            baseline = best(partial(joblib.load, local), args.runs)
            # A linear model's cache is its arrays (app/formats/linear.py), read and warmed up.
            reader = _read_linear if record.load_cache_recipe and \
                record.load_cache_recipe.get("form") == "linear" else _load_cached
            assert reader(store, record, signature) is not None, "the cache was not used"
            cached = best(partial(reader, store, record, signature), args.runs)
            whole = best(partial(load_version, store, record, load_predictor), args.runs)
            plain = best(partial(load_predictor, store.served_path(record)[0], "skops",
                                 signature=signature), max(2, args.runs // 3))
            print(f"{name:24} {baseline * 1000:9.1f} ms {cached * 1000:6.1f} ms "
                  f"{cached / baseline:5.2f}x {whole * 1000:10.1f} ms {plain * 1000:6.1f} ms")
        store.close()
    print("goal: cached <= 1.20x joblib.load")


if __name__ == "__main__":
    main()
