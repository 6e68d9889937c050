"""What check_structures costs beside loading: a 500-tree random forest, a 200-stage
gradient boosting classifier (3 classes: 600 trees), a 200-iteration HistGradientBoosting and a
k-nearest-neighbours KD tree, each loaded from skops and then checked.

Goal: checking takes a small fraction of loading (the baseline printed beside it). Median of
--runs runs of each.

Run: .venv/bin/python benchmarks/bench_structure.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def models() -> dict[str, Any]:
    from sklearn.datasets import make_classification
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        HistGradientBoostingClassifier,
        RandomForestClassifier,
    )
    from sklearn.neighbors import KNeighborsClassifier

    X, y = make_classification(n_samples=2000, n_features=20, n_informative=8, n_classes=3,
                               random_state=0)
    return {
        "random forest, 500 trees": RandomForestClassifier(
            n_estimators=500, n_jobs=1, random_state=0).fit(X, y),
        "gradient boosting, 200 stages x 3": GradientBoostingClassifier(
            n_estimators=200, random_state=0).fit(X, y),
        "hist gradient boosting, 200 x 3": HistGradientBoostingClassifier(
            max_iter=200, early_stopping=False, random_state=0).fit(X, y),
        "knn kd_tree, 2000 x 20": KNeighborsClassifier(algorithm="kd_tree").fit(X, y),
    }


def median_seconds(action: Callable[[], Any], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs

    import skops.io

    from app.formats.skops_format import load_skops
    from app.formats.structure import check_structures

    print(f"{'model':36} {'skops load':>11} {'check':>9} {'check/load':>10}")
    for name, model in models().items():
        data = skops.io.dumps(model)
        loaded, _ = load_skops(data)
        check_structures(loaded)  # warm: the first call imports the checks
        load = median_seconds(lambda data=data: load_skops(data), max(1, runs // 2))
        check = median_seconds(lambda loaded=loaded: check_structures(loaded), runs)
        print(f"{name:36} {load * 1000:9.0f} ms {check * 1000:6.1f} ms {check / load:9.1%}")


if __name__ == "__main__":
    main()
