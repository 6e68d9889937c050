"""Start-up figures of `modeldepot serve`, from source.

1. Time from launching `python -m app serve` to both servers answering their health checks
   (registry /api/v1/health and inference /v2/health/ready both 200), median of 5 runs, with 0,
   1 and 20 stored production models (LR, RF(100), HistGradientBoosting and a 20-feature
   pipeline in turn, served by scikit-learn: twins off; each with the load cache the registry's
   compile job writes). The empty data dir is the baseline. Goal (issue 18): 20 models under 2 s.
2. Idle memory of all processes together (supervisor, registry, inference, and anything they
   started), a few seconds after ready: the sum of RSS (counts shared pages once per process, so
   an upper bound) and the sum of PSS (shared pages split between sharers). Goal: RSS <= 150 MB
   with one small model.
3. The supervisor alone: time to import what `serve` needs (it must stay small).

With --twins the stored models also get their verified ONNX twins (the default setting) and are
served through them, except the linear ones, which the compile job's load cache keeps as arrays
that numpy answers from (app/formats/linear.py): the idle-memory figure of issue 18 (one small
model, an LR, RSS <= 150 MB) holds with and without twins. With --binary PATH,
the built one-file program (`pyinstaller --noconfirm build.spec` -> dist/modeldepot) is started
instead of the source: goal 20 models ready in <= 2.5 s.

How the processes are counted: the supervisor, the registry and the inference server, and
anything they started (the registry's sandbox zygote and training pool start on the first upload
or job, so an idle box that received none has none; were one running it would be listed and
summed too).

Run: .venv/bin/python benchmarks/bench_startup.py [--runs N] [--twins] [--binary dist/modeldepot]
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.live import free_ports, process_tree  # noqa: E402


def answers(port: int, path: str) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def memory_kb(pid: int, field: str, source: str) -> int:
    try:
        with open(f"/proc/{pid}/{source}") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def command_line(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            words = f.read().split(b"\0")
    except OSError:
        return "?"
    return " ".join(w.decode(errors="replace") for w in words[1:4] if w)


def wait_ready(proc: subprocess.Popen[bytes], started: float, registry_port: int,
               inference_port: int, limit_s: float) -> float:
    """Seconds from `started` until both servers answer their health checks."""
    while not (answers(registry_port, "/api/v1/health")
               and answers(inference_port, "/v2/health/ready")):
        if proc.poll() is not None:
            raise SystemExit(f"{' '.join(map(str, proc.args))} exited with {proc.returncode}")
        if time.perf_counter() - started > limit_s:
            raise SystemExit(f"not ready within {limit_s:.0f} s")
        time.sleep(0.01)
    return time.perf_counter() - started


def tree_memory(pid: int) -> dict[str, Any]:
    """The memory of a process and all its descendants."""
    pids = process_tree(pid)
    return {
        "processes": len(pids),
        "rss_mb": sum(memory_kb(p, "VmRSS", "status") for p in pids) / 1024,
        "pss_mb": sum(memory_kb(p, "Pss", "smaps_rollup") for p in pids) / 1024,
        "per_process": [(memory_kb(p, "VmRSS", "status") / 1024, command_line(p))
                        for p in pids],
    }


def stored_models(count: int, twins: bool = False) -> Path:
    """A data dir holding `count` production models, each with its load cache (and with
    `twins`, its verified ONNX twin where the converter makes one)."""
    from app.config import Paths
    from app.formats.signature import signature_from_estimator
    from app.store import NewVersion, Store
    from app.training.twin_build import compile_version
    from benchmarks.bench_load import models
    from tests.models import write_skops

    home = Path(tempfile.mkdtemp(prefix="modeldepot-bench-"))
    store = Store(Paths(home))
    kinds = list(models().values())
    for n in range(count):
        model = kinds[n % len(kinds)]
        path = write_skops(home.parent / f"{home.name}-{n}.skops", model)
        temp, sha, size = store.blobs.receive(iter([path.read_bytes()]))
        path.unlink()
        record = store.add_version(f"model-{n}", temp, sha, size, NewVersion(
            format="skops", signature=signature_from_estimator(model).to_dict()))
        store.set_alias(f"model-{n}", "production", 1)
        compile_version(store, record.id, twin=twins)
    store.close()
    return home


def loaded_models(port: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        conn.request("GET", "/metrics")
        for line in conn.getresponse().read().decode().splitlines():
            if line.startswith("modeldepot_inference_loaded_models "):
                return int(float(line.split()[1]))
    except OSError:
        pass
    finally:
        conn.close()
    return 0


def one_run(idle_seconds: float, prepared: Path, count: int, program: list[str],
            twins: bool) -> tuple[float, float, dict[str, Any] | None]:
    home = Path(tempfile.mkdtemp(prefix="modeldepot-bench-")) / "home"
    shutil.copytree(prepared, home)
    registry_port, inference_port = free_ports(2)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELDEPOT_")}
    env.pop("NOTIFY_SOCKET", None)
    env["MODELDEPOT_TWINS"] = "true" if twins else "false"
    command = [*program, "serve", "--home", str(home),
               "--registry-port", str(registry_port), "--inference-port", str(inference_port)]
    started = time.perf_counter()
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        elapsed = wait_ready(proc, started, registry_port, inference_port, 60)
        while loaded_models(inference_port) < count:  # loads go on after ready
            if time.perf_counter() - started > 60:
                raise SystemExit("the models did not all load within 60 s")
            time.sleep(0.01)
        loaded = time.perf_counter() - started
        if not idle_seconds:
            return elapsed, loaded, None
        time.sleep(idle_seconds)
        return elapsed, loaded, tree_memory(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        shutil.rmtree(home.parent, ignore_errors=True)


def supervisor_import_ms() -> float:
    code = ("import time; t = time.perf_counter(); import app.cli, app.supervisor.commands; "
            "print((time.perf_counter() - t) * 1000)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    return float(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--idle", type=float, default=3.0, help="seconds idle before measuring")
    parser.add_argument("--models", default="0,1,20", help="stored model counts to start with")
    parser.add_argument("--twins", action="store_true", help="store and serve ONNX twins")
    parser.add_argument("--binary", type=Path, help="start this built program, not the source")
    args = parser.parse_args()

    program = [str(args.binary.resolve())] if args.binary else [sys.executable, "-m", "app"]
    goal = 2.5 if args.binary else 2.0
    print(f"== modeldepot serve from {args.binary or 'source'} ({' '.join(program)}), "
          f"{args.runs} runs each, twins {'on' if args.twins else 'off'}")
    for count in (int(c) for c in args.models.split(",")):
        prepared = stored_models(count, args.twins)
        times, all_loaded, memory = [], [], None
        try:
            for i in range(args.runs):
                elapsed, loaded, mem = one_run(args.idle if i == args.runs - 1 else 0.0,
                                               prepared, count, program, args.twins)
                times.append(elapsed)
                all_loaded.append(loaded)
                memory = mem or memory
        finally:
            shutil.rmtree(prepared, ignore_errors=True)
        median = statistics.median(times)
        print(f"\n{count:3d} models: start to both ready: median {median:.3f} s, min "
              f"{min(times):.3f}, max {max(times):.3f} (goal <= {goal:g} s) "
              f"{'OK' if median <= goal else 'OVER'}")
        print(f"  start to every production model loaded: median "
              f"{statistics.median(all_loaded):.3f} s, max {max(all_loaded):.3f}")
        if memory:
            print(f"  idle memory, {memory['processes']} processes: RSS {memory['rss_mb']:.0f} MB, "
                  f"PSS {memory['pss_mb']:.0f} MB (goal with one small model: RSS <= 150 MB)")
            for mb, cmd in memory["per_process"]:
                print(f"    {mb:6.0f} MB  {cmd}")
    print(f"supervisor imports (app.cli + app.supervisor.commands): "
          f"{supervisor_import_ms():.0f} ms")


if __name__ == "__main__":
    main()
