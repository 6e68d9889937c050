"""Figures of the built PyInstaller binary (`pyinstaller build.spec` first, or pass --build).

1. Size: dist/modeldepot (onefile, the shipped artifact; goal at most 120 MB) and the onedir
   folder dist/modeldepot-dir.
2. Cold start: from launching `modeldepot serve` to both servers answering (registry
   /api/v1/health and inference /v2/health/ready both 200), median of 5 runs per build, each on a
   fresh data dir and a fresh TMPDIR (so the onefile build unpacks every time; the page cache is
   warm, as on any second start of a machine). Goal: within 2 s. The time a onefile build spends
   unpacking before Python starts is shown beside it: `modeldepot version` onefile minus onedir.
   A onefile build unpacks numpy, scipy, scikit-learn and ONNX later (app/lazy_unpack.py): the
   time from launch until that is done is shown too, since a first upload or model load waits
   for it.
3. Idle memory: the sum over the whole process tree (launcher, supervisor, registry, inference)
   a few seconds after ready, RSS (shared pages counted once per process) and PSS.

The environment is the bundle tests' minimal one: HOME, MODELDEPOT_HOME, TMPDIR and a PATH with no
Python; the working directory is a fresh temp folder.

Run: .venv/bin/python benchmarks/bench_bundle.py [--runs N] [--build]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_startup import tree_memory, wait_ready  # noqa: E402

from app.lazy_unpack import PARTS  # noqa: E402
from tests.live import free_ports  # noqa: E402
from tests.models import iris_model, write_skops  # noqa: E402

ONEFILE = ROOT / "dist" / "modeldepot"
ONEDIR = ROOT / "dist" / "modeldepot-dir" / "modeldepot"
SIZE_GOAL_MB, READY_GOAL_S = 120, 2.0


def folder_size(path: Path) -> tuple[int, int]:
    total = files = 0
    for entry in path.rglob("*"):
        if entry.is_file() and not entry.is_symlink():
            total += entry.stat().st_size
            files += 1
    return total, files


def minimal_env(base: Path) -> dict[str, str]:
    for name in ("home", "data", "tmp", "bin", "cwd"):
        (base / name).mkdir(parents=True, exist_ok=True)
    return {"HOME": str(base / "home"), "MODELDEPOT_HOME": str(base / "data"),
            "TMPDIR": str(base / "tmp"), "PATH": str(base / "bin")}


def unpacked_seconds(tmp: Path, started: float, limit_s: float) -> float | None:
    """Seconds from `started` until a onefile build has unpacked every deferred part in the
    background (app/lazy_unpack.py); None for a onedir build, which has none."""
    folders = list(tmp.glob("_MEI*"))
    if not folders:
        return None
    markers = [folders[0] / part.done_marker for part in PARTS]
    while not all(m.exists() for m in markers):
        if time.perf_counter() - started > limit_s:
            raise SystemExit(f"deferred libraries not unpacked within {limit_s:.0f} s")
        time.sleep(0.01)
    return time.perf_counter() - started


def one_start(binary: Path, idle_seconds: float, data: Path | None = None
              ) -> tuple[float, float | None, dict[str, Any] | None]:
    base = Path(tempfile.mkdtemp(prefix="modeldepot-bench-bundle-"))
    registry_port, inference_port = free_ports(2)
    env = minimal_env(base)
    if data is not None:
        shutil.copytree(data, base / "data", dirs_exist_ok=True)
    started = time.perf_counter()
    proc = subprocess.Popen([str(binary), "serve", "--registry-port", str(registry_port),
                             "--inference-port", str(inference_port)], env=env,
                            cwd=base / "cwd", stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ready = wait_ready(proc, started, registry_port, inference_port, 120)
        unpacked = unpacked_seconds(base / "tmp", started, 120)
        if not idle_seconds:
            return ready, unpacked, None
        time.sleep(idle_seconds)
        return ready, unpacked, tree_memory(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        leftovers = list((base / "tmp").glob("_MEI*"))
        shutil.rmtree(base, ignore_errors=True)
        if leftovers:
            raise SystemExit(f"unpack folder left behind after SIGTERM: {leftovers}")


def version_seconds(binary: Path, runs: int) -> float:
    times = []
    for _ in range(runs):
        base = Path(tempfile.mkdtemp(prefix="modeldepot-bench-version-"))
        try:
            started = time.perf_counter()
            subprocess.run([str(binary), "version"], env=minimal_env(base), cwd=base / "cwd",
                           check=True, capture_output=True)
            times.append(time.perf_counter() - started)
        finally:
            shutil.rmtree(base, ignore_errors=True)
    return statistics.median(times)


def build() -> float:
    shutil.rmtree(ROOT / "build", ignore_errors=True)
    shutil.rmtree(ROOT / "dist", ignore_errors=True)
    started = time.perf_counter()
    subprocess.run([str(Path(sys.executable).with_name("pyinstaller")), "--noconfirm", "--clean",
                    "build.spec"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def pending_jobs(port: int, token: str) -> int:
    count = 0
    for status in ("queued", "running"):
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/jobs?status={status}",
                                         headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            count += len(json.load(response)["jobs"])
    return count


def data_dir_with_a_production_model(binary: Path) -> Path:
    """A data dir as a first `serve` leaves it after `models push ... --alias production`."""
    base = Path(tempfile.mkdtemp(prefix="modeldepot-bench-model-"))
    env = minimal_env(base)
    registry_port, inference_port = free_ports(2)
    proc = subprocess.Popen([str(binary), "serve", "--registry-port", str(registry_port),
                             "--inference-port", str(inference_port)], env=env,
                            cwd=base / "cwd", stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(proc, time.perf_counter(), registry_port, inference_port, 120)
        model = write_skops(base / "iris.skops", iris_model())
        subprocess.run([str(binary), "models", "push", str(model), "--name", "iris", "--alias",
                        "production"], env=env, cwd=base / "cwd", check=True,
                       capture_output=True, timeout=120)
        # As a machine that has served a while: the version's ONNX twin is built.
        token = (base / "data" / "token").read_text().strip()
        deadline = time.monotonic() + 120
        while pending_jobs(registry_port, token):
            if time.monotonic() > deadline:
                raise SystemExit("the twin build did not finish within 120 s")
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    return base / "data"


def report_starts(label: str, binary: Path, runs: int, idle: float,
                  data: Path | None = None) -> tuple[float, float]:
    print(f"\n== {label}: {binary.relative_to(ROOT)}, {runs} cold starts")
    times, unpacks, memory = [], [], None
    for i in range(runs):
        elapsed, unpacked, mem = one_start(binary, idle if i == runs - 1 else 0.0, data)
        times.append(elapsed)
        memory = mem or memory
        line = f"run {i + 1}: both ready in {elapsed:.3f} s"
        if unpacked is not None:
            unpacks.append(unpacked)
            line += f", deferred libraries unpacked at {unpacked:.3f} s"
        print(line)
    median = statistics.median(times)
    print(f"start to both ready: median {median:.3f} s, min {min(times):.3f}, "
          f"max {max(times):.3f} (goal <= {READY_GOAL_S} s) "
          f"{'OK' if median <= READY_GOAL_S else 'OVER'}")
    if unpacks:
        print(f"start to numpy, scipy, scikit-learn and ONNX unpacked (a first upload or model "
              f"load waits until then): median {statistics.median(unpacks):.3f} s")
    assert memory is not None
    print(f"idle memory, {memory['processes']} processes: RSS {memory['rss_mb']:.0f} MB, "
          f"PSS {memory['pss_mb']:.0f} MB")
    for mb, cmd in memory["per_process"]:
        print(f"  {mb:6.0f} MB  {cmd}")
    return median, memory["rss_mb"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--idle", type=float, default=3.0, help="seconds idle before measuring")
    parser.add_argument("--build", action="store_true",
                        help="build first (from scratch) and time the build")
    args = parser.parse_args()

    if args.build:
        print(f"build (pyinstaller --clean build.spec, fresh build/ and dist/): {build():.0f} s")
    for path in (ONEFILE, ONEDIR):
        if not path.is_file():
            raise SystemExit(f"No binary at {path}: run `pyinstaller build.spec` (or --build).")

    onefile_mb = ONEFILE.stat().st_size / 2**20
    onedir_bytes, onedir_files = folder_size(ONEDIR.parent)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"onefile size: {onefile_mb:.1f} MB (goal <= {SIZE_GOAL_MB} MB) "
          f"{'OK' if onefile_mb <= SIZE_GOAL_MB else 'OVER'}")
    print(f"onedir size:  {onedir_bytes / 2**20:.1f} MB in {onedir_files} files "
          "(what the onefile build unpacks on every start)")
    onefile_version = version_seconds(ONEFILE, args.runs)
    onedir_version = version_seconds(ONEDIR, args.runs)
    print(f"`modeldepot version`: onefile {onefile_version:.3f} s, onedir {onedir_version:.3f} s "
          f"(unpacking costs the onefile build ~{onefile_version - onedir_version:.2f} s)")

    results = {label: report_starts(label, path, args.runs, args.idle)
               for label, path in (("onefile", ONEFILE), ("onedir", ONEDIR))}
    # The inference server loads production models before it reports ready: with one, a
    # onefile start also waits for scikit-learn to be unpacked and imported.
    data = data_dir_with_a_production_model(ONEFILE)
    try:
        results["onefile, one production model"] = report_starts(
            "onefile, one production model (loaded before ready)", ONEFILE, args.runs, args.idle,
            data)
        results["onedir, one production model"] = report_starts(
            "onedir, one production model (loaded before ready)", ONEDIR, args.runs, args.idle,
            data)
    finally:
        shutil.rmtree(data.parent, ignore_errors=True)
    print("\n== summary")
    for label, (median, rss) in results.items():
        print(f"{label:30} ready median {median:.2f} s, idle RSS {rss:.0f} MB")


if __name__ == "__main__":
    main()
