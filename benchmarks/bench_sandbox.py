"""Sandbox figures: seconds per inspection of a model file, a new process per check (the
baseline, `sandbox-child`) against a child forked by the zygote (app/formats/zygote.py), in
one run on this machine.

Models: LogisticRegression and RandomForest(100 trees) on iris, each as a trusted joblib pickle
(inspected, then converted to skops in the child) and as a skops file (inspected only). Each
figure is the median of --runs checks, run one after another; the zygote's own start (the
imports it does once) is measured separately, as the first check after it was ended.

Run: .venv/bin/python benchmarks/bench_sandbox.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import skops.io
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.formats import inspect_upload  # noqa: E402
from app.formats.zygote_client import shutdown_zygote  # noqa: E402
from app.store.blobs import BlobStore  # noqa: E402


def model_files(folder: Path) -> dict[str, tuple[Path, bool]]:
    """{label: (file, trust)} for the four files measured."""
    X, y = load_iris(return_X_y=True)
    models: dict[str, Any] = {
        "LR": LogisticRegression(max_iter=500).fit(X, y),
        "RF(100)": RandomForestClassifier(n_estimators=100, random_state=0).fit(X, y),
    }
    files: dict[str, tuple[Path, bool]] = {}
    for name, model in models.items():
        pickled = folder / f"{name}.joblib"
        joblib.dump(model, pickled)
        files[f"{name} joblib"] = (pickled, True)
        skopsed = folder / f"{name}.skops"
        skopsed.write_bytes(skops.io.dumps(model))
        files[f"{name} skops"] = (skopsed, False)
    return files


def seconds(check: Callable[[], None]) -> float:
    start = time.perf_counter()
    check()
    return time.perf_counter() - start


def checker(path: Path, trust: bool, blobs: BlobStore, via_zygote: bool) -> Callable[[], None]:
    def check() -> None:
        result = inspect_upload(path, trust=trust, receive=blobs.receive, via_zygote=via_zygote)
        if result.served is not None:
            result.served.temp.unlink()

    return check


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        blobs = BlobStore(folder / "blobs", folder / "tmp")
        files = model_files(folder)
        first_path, first_trust = files["LR skops"]
        shutdown_zygote()
        cold = seconds(checker(first_path, first_trust, blobs, True))
        print(f"first check, zygote starting: {cold:.3f} s (includes its imports, done once)")
        print(f"{'file':<16}{'new process':>14}{'zygote':>10}{'speed-up':>10}")
        for label, (path, trust) in files.items():
            figures = []
            for via_zygote in (False, True):
                check = checker(path, trust, blobs, via_zygote)
                figures.append(statistics.median(seconds(check) for _ in range(args.runs)))
            direct, forked = figures
            print(f"{label:<16}{direct:>12.3f} s{forked:>8.3f} s{direct / forked:>9.1f}x")
        shutdown_zygote()


if __name__ == "__main__":
    main()
