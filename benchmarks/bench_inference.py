"""Inference speed: our server against a hand-written FastAPI app and the bare-ASGI ceiling.

Starts, in one run: `modeldepot inference` over a temporary data dir holding a
LogisticRegression and a RandomForest (100 trees, depth 10) on 20 features, twice: once serving
through scikit-learn (`ours`, twins=false) and once through the verified ONNX twins the registry's
compile job builds (`compiled`); the naive app and the peak app from ../shared/baselines (run
from there). Every server is pinned to core 0, the load
generator (wrk with a Lua script for POST bodies) to core 1, with one BLAS/OpenMP thread each.
Prints req/s, p50 and p99 for each model, batch 1 and 100, concurrency 1 and 64, the ratios to the
naive app and to the ceiling, and the median of the rounds. A third `modeldepot inference`
(`history-off`: scikit-learn, traffic_history=false) runs back to back with `ours` in every cell,
and a second table compares them: the cost of the per-minute traffic history
(app/inference/traffic.py).

    .venv/bin/python benchmarks/bench_inference.py            # 3 rounds of 4 s (about 10 min)
    .venv/bin/python benchmarks/bench_inference.py --quick    # 1 round of 2 s
    .venv/bin/python benchmarks/bench_inference.py --history  # only ours against history-off
    .venv/bin/python benchmarks/bench_inference.py --v2       # only the v2 cell below

Every full run also measures single-row LR through the v2 route (`/v2/models/lr/infer`, one
FP64 tensor of shape [1, 20]) at concurrency 32, against the ceiling at 32 in the same round:
goal (issue 18) >= 0.35x the ceiling.
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
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BASELINES = Path(os.environ.get("MODELDEPOT_BASELINES", ROOT.parent / "shared" / "baselines"))
SERVER_CORE, LOAD_CORE = "0", "1"
THREAD_ENV = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                               "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")}
N_FEATURES = 20
MODELS = ("lr", "rf")
BATCHES = (1, 100)
CONCURRENCY = (1, 64)
KINDS = ("ceiling", "naive", "ours", "compiled")
HISTORY_KINDS = ("ours", "history-off")
V2_CONCURRENCY = 32
V2_KINDS = ("ceiling", "ours", "compiled")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_models(work: Path) -> dict[str, Any]:
    """Fit both models, write joblib files for the naive app, register skops versions for ours."""
    import joblib
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    from app.config import Paths
    from app.formats.signature import Signature, signature_from_estimator
    from app.formats.twin import load_twin
    from app.store import NewVersion, Store
    from app.training.twin_build import build_twin
    from tests.models import write_skops

    X, y = make_classification(n_samples=3000, n_features=N_FEATURES, n_informative=10,
                               random_state=0)
    fitted = {
        "lr": LogisticRegression(max_iter=1000).fit(X, y),
        "rf": RandomForestClassifier(n_estimators=100, max_depth=10, random_state=0).fit(X, y),
    }
    store = Store(Paths(work / "home"))
    twins = {}
    for name, model in fitted.items():
        joblib.dump(model, work / f"{name}.joblib")
        path = write_skops(work / f"{name}.skops", model)
        temp, sha, size = store.blobs.receive(iter([path.read_bytes()]))
        sig = signature_from_estimator(model).to_dict()
        record = store.add_version(name, temp, sha, size,
                                   NewVersion(format="skops", signature=sig))
        store.set_alias(name, "production", 1)
        outcome = build_twin(str(work / "home"), record.id)  # what the registry's job does
        if outcome["status"] != "verified":
            raise RuntimeError(f"the twin of {name} did not verify: {outcome}")
        twin = store.get_version(name, 1)
        twins[f"{name} twin"] = load_twin(store.blobs.path(twin.twin_sha256).read_bytes(),
                                          Signature.from_dict(sig), twin.twin_report)
    store.close()
    rows = X[:100].round(4)
    per_call = {}
    callers = {**fitted, **twins}
    for name, model in callers.items():  # what one predict call costs, for the p50 target
        times = []
        for _ in range(200):
            t = time.perf_counter()
            model.predict(rows[:1])
            times.append(time.perf_counter() - t)
        per_call[name] = statistics.median(times) * 1000
    return {"rows": rows.tolist(), "predict_ms": per_call}


class Server:
    def __init__(self, label: str, argv: list[str], env: dict[str, str], port: int,
                 health: str) -> None:
        self.label, self.port = label, port
        full_env = {**os.environ, **THREAD_ENV, **env}
        self.proc = subprocess.Popen(["taskset", "-c", SERVER_CORE, *argv], env=full_env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{label} exited: {self.proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{health}", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def cpu_seconds(self) -> float:
        """User + system CPU time the server has used so far (every thread)."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def uvicorn_argv(app: str, port: int) -> list[str]:
    return [sys.executable, "-m", "uvicorn", app, "--app-dir", str(BASELINES), "--port", str(port),
            "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"]


def start_servers(work: Path, kinds: tuple[str, ...]) -> dict[str, Server]:
    servers: dict[str, Server] = {}
    for kind, twins, history in (("ours", "false", "true"), ("compiled", "true", "true"),
                                 ("history-off", "false", "false")):
        if kind not in kinds:
            continue
        port = free_port()
        servers[kind] = Server(
            kind, [sys.executable, "-m", "app", "inference", "--inference-port", str(port),
                   "--log-level", "warning"],
            {"MODELDEPOT_HOME": str(work / "home"), "PYTHONPATH": str(ROOT),
             "MODELDEPOT_TWINS": twins, "MODELDEPOT_TRAFFIC_HISTORY": history}, port,
            "/v2/health/ready")
    for name in MODELS if "naive" in kinds else ():
        port = free_port()
        servers[f"naive-{name}"] = Server(f"naive-{name}", uvicorn_argv("naive_app:app", port),
                                          {"MODEL_PATH": str(work / f"{name}.joblib")}, port,
                                          "/health")
    if "ceiling" in kinds:
        port = free_port()
        servers["ceiling"] = Server("ceiling", uvicorn_argv("peak_app:app", port), {}, port, "/")
    return servers


def wait_loaded(port: int) -> None:
    """Until both models are loaded: a load still running in the background (the first one
    imports scikit-learn) would otherwise share the server's core with the first cells."""
    for model in MODELS:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/models/{model}/ready",
                                    timeout=300):
            pass


LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = io.open("{body}", "rb"):read("*a")
"""


def wrk(url: str, script: Path, connections: int, seconds: float) -> dict[str, float]:
    duration = f"-d{max(1, round(seconds))}s"  # wrk takes whole seconds
    out = subprocess.run(
        ["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{connections}", duration, "--latency",
         "-s", str(script), url],
        capture_output=True, text=True, check=True, timeout=seconds + 60,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50": _latency(out, "50%"), "p99": _latency(out, "99%"),
            "errors": float(errors.group(1)) if errors else 0.0}


def _latency(out: str, label: str) -> float:
    value, unit = re.search(rf"{re.escape(label)}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round of 2 s per cell")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    parser.add_argument("--history", action="store_true",
                        help="measure only ours with the traffic history on and off")
    parser.add_argument("--v2", action="store_true",
                        help="measure only single-row LR on /v2 at concurrency 32")
    args = parser.parse_args()
    kinds = HISTORY_KINDS if args.history else (*KINDS, "history-off")
    if args.quick:
        args.rounds, args.seconds = 1, 2.0
    if shutil.which("wrk") is None:
        print("wrk is missing: apt-get install wrk", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-inference-"))
    info = make_models(work)
    bodies: dict[int, Path] = {}
    scripts: dict[int, Path] = {}
    for batch in BATCHES:
        bodies[batch] = work / f"body-{batch}.json"
        bodies[batch].write_text(json.dumps({"instances": info["rows"][:batch]}))
        scripts[batch] = work / f"post-{batch}.lua"
        scripts[batch].write_text(LUA.format(body=bodies[batch]))
    v2_body = work / "body-v2.json"
    v2_body.write_text(json.dumps({"inputs": [{"name": "input", "shape": [1, N_FEATURES],
                                               "datatype": "FP64", "data": info["rows"][0]}]}))
    v2_script = work / "post-v2.lua"
    v2_script.write_text(LUA.format(body=v2_body))
    if args.v2:
        kinds = V2_KINDS
    servers = start_servers(work, kinds)
    urls = {"ceiling": lambda m: f"http://127.0.0.1:{servers['ceiling'].port}/predict",
            "naive": lambda m: f"http://127.0.0.1:{servers[f'naive-{m}'].port}/predict",
            "ours": lambda m: f"http://127.0.0.1:{servers['ours'].port}/v1/models/{m}/predict",
            "compiled":
                lambda m: f"http://127.0.0.1:{servers['compiled'].port}/v1/models/{m}/predict",
            "history-off":
                lambda m: f"http://127.0.0.1:{servers['history-off'].port}/v1/models/{m}/predict"}
    v2_urls = {**({"ceiling": urls["ceiling"]("lr")} if "ceiling" in servers else {}),
               **{k: f"http://127.0.0.1:{servers[k].port}/v2/models/lr/infer"
                  for k in ("ours", "compiled") if k in servers}}
    results: dict[tuple[str, str, int, int], list[dict[str, float]]] = {}
    v2: dict[str, list[dict[str, float]]] = {}
    try:
        for kind in ("ours", "compiled", "history-off"):
            if kind in servers:  # production models load in the background after ready
                wait_loaded(servers[kind].port)
        for url in [urls[k](m) for k in kinds if k != "ceiling" for m in MODELS]:
            wrk(url, scripts[1], 8, 1.0)  # warm up every server and model
        for round_ in range(args.rounds):
            for kind, url in v2_urls.items():  # back to back, same conditions
                script = scripts[1] if kind == "ceiling" else v2_script
                cpu = servers[kind].cpu_seconds()
                r = wrk(url, script, V2_CONCURRENCY, args.seconds)
                # CPU per request: robust to other work on the machine taking the server's core
                r["cpu_us"] = (servers[kind].cpu_seconds() - cpu) / (r["rps"] * args.seconds) * 1e6
                v2.setdefault(kind, []).append(r)
            if args.v2:
                print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr)
                continue
            for model in MODELS:
                for batch in BATCHES:
                    for conc in CONCURRENCY:
                        for kind in kinds:  # back to back, same conditions
                            if kind == "ceiling" and model != MODELS[0]:
                                continue  # the ceiling serves no model: measured once per cell
                            r = wrk(urls[kind](model), scripts[batch], conc, args.seconds)
                            results.setdefault((kind, model, batch, conc), []).append(r)
            print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    if not args.history and not args.v2:
        report(results, info["predict_ms"], args)
    if "ceiling" in v2:
        report_v2(v2, args)
    if not args.v2:
        report_history(results, args)
    if args.json:
        args.json.write_text(json.dumps({"|".join(map(str, k)): v for k, v in results.items()},
                                        indent=1))
    return 0


def report(results: dict[tuple[str, str, int, int], list[dict[str, float]]],
           predict_ms: dict[str, float], args: argparse.Namespace) -> None:
    def med(kind: str, model: str, batch: int, conc: int, key: str) -> float:
        runs = results[(kind, model if kind != "ceiling" else MODELS[0], batch, conc)]
        return statistics.median(r[key] for r in runs)

    print(f"\nmedian of {args.rounds} round(s) x {args.seconds:g} s; "
          f"servers on core {SERVER_CORE}, wrk on core {LOAD_CORE}; one predict call (1 row): "
          + ", ".join(f"{m} {v:.3f} ms" for m, v in predict_ms.items()))
    header = (f"{'model':<5} {'batch':>5} {'conc':>4} | {'ceiling':>8} {'p50':>6} {'p99':>6} | "
              f"{'naive':>7} {'p50':>6} {'p99':>6} | {'ours':>7} {'p50':>6} {'p99':>6} | "
              f"{'compiled':>8} {'p50':>6} {'p99':>6} | {'x naive':>7} {'/ceil':>6} | "
              f"{'x naive':>7} {'/ceil':>6} {'errors':>6}")
    print(header)
    print("-" * len(header))
    for model in MODELS:
        for batch in BATCHES:
            for conc in CONCURRENCY:
                cells = [(med(k, model, batch, conc, "rps"), med(k, model, batch, conc, "p50"),
                          med(k, model, batch, conc, "p99")) for k in KINDS]
                errors = sum(r["errors"] for k in KINDS[1:]
                             for r in results[(k, model, batch, conc)])
                (c, cp50, cp99), (n, np50, np99), (o, op50, op99), (x, xp50, xp99) = cells
                print(f"{model:<5} {batch:>5} {conc:>4} | {c:>8.0f} {cp50:>6.2f} {cp99:>6.2f} | "
                      f"{n:>7.0f} {np50:>6.2f} {np99:>6.2f} | "
                      f"{o:>7.0f} {op50:>6.2f} {op99:>6.2f} | "
                      f"{x:>8.0f} {xp50:>6.2f} {xp99:>6.2f} | "
                      f"{o / n:>7.1f} {o / c:>6.2f} | {x / n:>7.1f} {x / c:>6.2f} {errors:>6.0f}")
    print("(req/s; p50 and p99 in ms; ours = scikit-learn, compiled = verified ONNX twin on "
          "onnxruntime; x naive and /ceil: ours, then compiled, over naive and ceiling)")


def report_v2(v2: dict[str, list[dict[str, float]]], args: argparse.Namespace) -> None:
    """Single-row LR on /v2 at concurrency 32 beside the ceiling measured in the same rounds."""
    print(f"\nv2 route, LR, 1 row, concurrency {V2_CONCURRENCY}: median of {args.rounds} "
          f"round(s) x {args.seconds:g} s")
    ceiling = statistics.median(r["rps"] for r in v2["ceiling"])
    ceiling_cpu = statistics.median(r["cpu_us"] for r in v2["ceiling"])
    for kind, runs in v2.items():
        rps = statistics.median(r["rps"] for r in runs)
        p50 = statistics.median(r["p50"] for r in runs)
        p99 = statistics.median(r["p99"] for r in runs)
        cpu = statistics.median(r["cpu_us"] for r in runs)
        errors = sum(r["errors"] for r in runs)
        print(f"  {kind:<9} {rps:>8.0f} req/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  "
              f"{rps / ceiling:5.2f}x ceiling | CPU {cpu:6.1f} us/req, ceiling's / ours "
              f"{ceiling_cpu / cpu:5.2f} | errors {errors:.0f}  "
              f"rounds {[round(r['rps']) for r in runs]}")
    print("  (goal: ours >= 0.35x the ceiling's req/s; ours = scikit-learn, compiled = ONNX twin."
          "\n   CPU us/req is the server's own CPU time over the requests it answered: on a busy "
          "machine\n   the steadier figure, since other work taking the server's core lowers "
          "req/s but not this)")


def report_history(results: dict[tuple[str, str, int, int], list[dict[str, float]]],
                   args: argparse.Namespace) -> None:
    """ours (history on, the default) against history-off, measured back to back in each cell."""
    print(f"\ntraffic history: median of {args.rounds} round(s) x {args.seconds:g} s")
    header = (f"{'model':<5} {'batch':>5} {'conc':>4} | {'on':>7} {'p50':>6} {'p99':>6} | "
              f"{'off':>7} {'p50':>6} {'p99':>6} | {'on/off':>6}")
    print(header)
    print("-" * len(header))
    for model in MODELS:
        for batch in BATCHES:
            for conc in CONCURRENCY:
                on, off = ([statistics.median(r[key] for r in results[(k, model, batch, conc)])
                            for key in ("rps", "p50", "p99")] for k in HISTORY_KINDS)
                print(f"{model:<5} {batch:>5} {conc:>4} | {on[0]:>7.0f} {on[1]:>6.2f} "
                      f"{on[2]:>6.2f} | {off[0]:>7.0f} {off[1]:>6.2f} {off[2]:>6.2f} | "
                      f"{on[0] / off[0]:>6.3f}")
    print("(req/s; p50 and p99 in ms; on/off near 1.0 means the history costs nothing measurable)")
    import timeit

    from app.inference.traffic import TrafficHistory

    history = TrafficHistory()
    calls = 200_000
    seconds = min(timeit.repeat(lambda: history.served("lr", 0.0012), number=calls, repeat=5))
    print(f"one TrafficHistory.served call, in process: {seconds / calls * 1e6:.2f} us "
          "(best of 5 x 200k)")


if __name__ == "__main__":
    raise SystemExit(main())
