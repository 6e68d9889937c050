"""Smoke test of a built binary: serve, push, predict (by scikit-learn, then by the ONNX twin
through onnxruntime), stop; with the figures it took. The ARM64 check of .ci/run and
packaging/build-linux-arm64.sh --smoke; an emulated binary needs QEMU_LD_PREFIX.

A prediction is part of it on purpose: onnxruntime is imported only when a twin is first served,
so servers that answer ready prove nothing about it (under qemu-user it once crashed on import).

Run: python -m tests.bundle.smoke dist/modeldepot-linux-aarch64
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.bundle.client import engine, logged_confinement, predict_v1, push
from tests.bundle.conftest import Bundle, alive, emulated, scaled, time_factor
from tests.live import process_tree, wait_until
from tests.models import iris_rows, write_skops

TWIN_TIMEOUT = 60.0


def tree_rss_mb(pid: int) -> float:
    """Resident memory of `pid` and every process below it (shared pages counted per process)."""
    total = 0
    for member in process_tree(pid):
        try:
            with open(f"/proc/{member}/status") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            continue
    return total / 1024


def iris_forest() -> Any:
    """A forest, not the logistic regression of tests.models: a linear model is served from its
    arrays by numpy (app/formats/linear.py), and this test must load onnxruntime."""
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    X, y = load_iris(return_X_y=True)
    return RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0).fit(X, y)


def smoke(binary: Path, base: Path) -> None:
    model, rows = iris_forest(), iris_rows(20)
    expected = model.predict(rows).tolist()
    mode = "under emulation (qemu-user)" if emulated(binary) else "native"
    print(f"{binary}: {binary.stat().st_size / 2**20:.0f} MB, {mode}, "
          f"waits scaled by {time_factor():g}")
    bundle = Bundle(binary, base)
    started = time.monotonic()
    bundle.start()
    try:
        bundle.wait_ready()
        print(f"serve: both servers ready in {time.monotonic() - started:.1f} s")
        assert bundle.proc is not None
        time.sleep(3)
        print(f"idle memory of the process tree: RSS {tree_rss_mb(bundle.proc.pid):.0f} MB")

        pushed = time.monotonic()
        version = push(bundle, "iris", write_skops(base / "iris.skops", model))["version"]
        print(f"push (checked in the sandbox child): {time.monotonic() - pushed:.1f} s")
        for line in logged_confinement(bundle):
            print(f"registry: {line.split(': ', 1)[-1]}")
        first = time.monotonic()
        answer = predict_v1(bundle, "iris", rows, version)
        assert answer["predictions"] == expected, answer
        print(f"first prediction (loads the model): {time.monotonic() - first:.1f} s")
        again = time.monotonic()
        predict_v1(bundle, "iris", rows, version)
        print(f"next prediction: {time.monotonic() - again:.2f} s")

        twin = time.monotonic()
        wait_until(lambda: engine(bundle, "iris", version) == "onnxruntime-twin",
                   scaled(TWIN_TIMEOUT), "the ONNX twin served", interval=0.5)
        answer = predict_v1(bundle, "iris", rows, version)
        assert answer["predictions"] == expected, answer
        print(f"served by its ONNX twin (onnxruntime) {time.monotonic() - twin:.1f} s later; "
              f"same predictions")
        print(f"memory after both engines loaded: RSS {tree_rss_mb(bundle.proc.pid):.0f} MB")

        bundle.remember()
        tree = set(bundle.seen)
        code = bundle.stop(signal.SIGTERM)
        assert code == 0, f"serve exited with {code}:\n{bundle.output()}"
        wait_until(lambda: not any(alive(pid) for pid in tree), scaled(5), "every process gone")
        assert bundle.unpack_dirs() == [], bundle.unpack_dirs()
        print("SIGTERM: exit 0, no process and no unpack folder left")
    except BaseException:
        print(bundle.output(), file=sys.stderr)
        raise
    finally:
        bundle.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("binary", type=Path)
    binary = parser.parse_args().binary.resolve()
    with tempfile.TemporaryDirectory(prefix="modeldepot-smoke-") as folder:
        smoke(binary, Path(folder))
    print("smoke test passed")


if __name__ == "__main__":
    main()
