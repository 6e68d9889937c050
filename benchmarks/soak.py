"""Soak: `modeldepot serve` under everything at once, for a bounded time, loopback traffic only.

At the same time, for --minutes (default 10):
- 8 upload threads of trusted joblib forests of mixed sizes (30 to 2,000 trees), with the
  command line's client (which waits and resends an upload refused as overloaded);
- 32 connections predicting through /v1 and /v2 (keep-alive);
- a training job every 20 s, an alias flip every 5 s, a dashboard page every second and
  `modeldepot status` every 10 s; the health routes of both servers probed twice a second.

It prints, each beside its goal: supervisor restarts (0), 5xx answers (0; the 503s of uploads
refused for overload are counted apart: they are the designed answer, and were sent again),
failed predictions (0), the slowest health answer (< 1 s), each process's RSS and open
descriptors at minute 1 and at the end (growth < 10 %), temp files left (0), and whether
`modeldepot doctor` is clean at the end.

Run: .venv/bin/python benchmarks/soak.py [--minutes 10] [--binary dist/modeldepot]
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
from sklearn.ensemble import RandomForestClassifier

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.client import Client, ClientError  # noqa: E402
from app.supervisor.discovery import read_server_file  # noqa: E402
from tests.conftest import TOKEN  # noqa: E402
from tests.live import free_ports  # noqa: E402
from tests.models import iris_model, iris_rows, write_skops  # noqa: E402
from tests.registry.jobdata import RF, classification_csv  # noqa: E402

UPLOADERS, PREDICTORS = 8, 32
FOREST_SIZES = ((30, None), (100, None), (400, None), (2000, 3))  # (trees, max_depth)
ROW = [5.1, 3.5, 1.4, 0.2]


class Tally:
    """Thread-safe counters and maxima."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.slowest_health: dict[str, float] = {"registry": 0.0, "inference": 0.0}
        self.errors: Counter[str] = Counter()  # "what: status message", to say what a 5xx was

    def error(self, what: str, status: int | None, message: str) -> None:
        with self.lock:
            self.errors[f"{what}: {status} {message[:160]}"] += 1

    def add(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.counts[key] += n

    def health(self, role: str, seconds: float) -> None:
        with self.lock:
            self.slowest_health[role] = max(self.slowest_health[role], seconds)


class Soak:
    def __init__(self, home: Path, command: list[str], minutes: float) -> None:
        self.home = home
        self.command = command
        self.seconds = minutes * 60
        self.registry_port, self.inference_port = free_ports(2)
        self.tally = Tally()
        self.stop = threading.Event()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MODELDEPOT_")}
        self.env.update(MODELDEPOT_HOME=str(home), MODELDEPOT_TOKEN=TOKEN)
        self.registry = Client(f"http://127.0.0.1:{self.registry_port}", TOKEN,
                               notice=lambda _: self.tally.add("upload_refused_overloaded"))

    # -- the server --------------------------------------------------------------------------

    def start(self) -> subprocess.Popen[bytes]:
        log = (self.home.parent / "serve.log").open("ab")
        proc = subprocess.Popen(
            [*self.command, "serve", "--registry-port", str(self.registry_port),
             "--inference-port", str(self.inference_port)],
            env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while (read_server_file(self.home / "server.json") or {}).get("state") != "ready":
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"serve did not start; see {log.name}")
            time.sleep(0.2)
        return proc

    def children(self) -> dict[str, int]:
        info = read_server_file(self.home / "server.json") or {}
        return {role: c["pid"] for role, c in info.get("children", {}).items() if c.get("pid")}

    def restarts(self) -> int:
        info = read_server_file(self.home / "server.json") or {}
        return sum(int(c.get("restarts", 0)) for c in info.get("children", {}).values())

    # -- load --------------------------------------------------------------------------------

    def every(self, period: float, action: Callable[[int], None]) -> None:
        for n in itertools.count():
            if self.stop.wait(period if n else 0):
                return
            action(n)

    def uploader(self, index: int, files: list[Path]) -> None:
        for n in itertools.count(index):
            if self.stop.is_set():
                return
            try:
                self.registry.upload(f"up{index}", files[n % len(files)], {"trust": True})
                self.tally.add("uploads_stored")
            except ClientError as exc:
                self.tally.add("5xx" if (exc.status or 0) >= 500 else "upload_4xx")
                self.tally.add(f"upload_error_{exc.status}")
                self.tally.error("upload", exc.status, str(exc))

    def predictor(self, index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.inference_port, timeout=30)
        v1 = json.dumps({"instances": [ROW]}).encode()
        v2 = json.dumps({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64",
                                     "data": ROW}]}).encode()
        for n in itertools.count(index):
            if self.stop.is_set():
                break
            path, body = (("/v1/models/soak/predict", v1) if n % 2 else
                          ("/v2/models/soak/infer", v2))
            try:
                conn.request("POST", path, body, {"Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                status = 0
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.inference_port, timeout=30)
            self.tally.add("predictions")
            if status != 200:
                self.tally.add("predictions_failed")
                if status >= 500:
                    self.tally.add("5xx")
        conn.close()

    def get(self, port: int, path: str, timeout: float = 30) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            return response.status
        except (OSError, http.client.HTTPException):
            return 0
        finally:
            conn.close()

    def probe_health(self, _: int) -> None:
        for role, port, path in (("registry", self.registry_port, "/api/v1/health"),
                                 ("inference", self.inference_port, "/v2/health/live")):
            started = time.perf_counter()
            status = self.get(port, path, timeout=10)
            self.tally.health(role, time.perf_counter() - started)
            if status != 200:
                self.tally.add("health_failed")

    def dashboard(self, n: int) -> None:
        status = self.get(self.registry_port, ("/", "/models/soak", "/jobs")[n % 3])
        self.tally.add("dashboard_pages")
        if status >= 500 or status == 0:
            self.tally.add("5xx" if status else "dashboard_unanswered")

    def flip_alias(self, n: int) -> None:
        self.checked(lambda: self.registry.request(
            "PUT", "/api/v1/models/soak/aliases/production", json_body={"version": 1 + n % 2}),
            "alias_flips")

    def train(self, dataset: str) -> None:
        self.checked(lambda: self.registry.request("POST", "/api/v1/jobs", json_body={
            "kind": "train", "model": "trained", "dataset": dataset, "target": "label",
            "estimator": RF, "params": {"n_estimators": 50}}), "jobs_submitted")

    def status(self, _: int) -> None:
        done = subprocess.run([*self.command, "status"], env=self.env, capture_output=True,
                              timeout=60)
        self.tally.add("status_runs" if done.returncode == 0 else "status_failed")

    def checked(self, call: Callable[[], Any], what: str) -> None:
        try:
            call()
            self.tally.add(what)
        except ClientError as exc:
            self.tally.add("5xx" if (exc.status or 0) >= 500 else f"{what}_failed")
            self.tally.error(what, exc.status, str(exc))

    # -- figures -----------------------------------------------------------------------------

    def resources(self, serve_pid: int) -> dict[str, tuple[int, int]]:
        """{process: (RSS bytes, open descriptors)} for the supervisor and both servers."""
        found = {"supervisor": serve_pid, **self.children()}
        out = {}
        for role, pid in found.items():
            try:
                with open(f"/proc/{pid}/status") as f:
                    rss = next(int(x.split()[1]) * 1024 for x in f if x.startswith("VmRSS:"))
                out[role] = (rss, len(os.listdir(f"/proc/{pid}/fd")))
            except (OSError, StopIteration):
                out[role] = (0, 0)
        return out

    def run(self, work: Path) -> int:
        files = []
        for trees, depth in FOREST_SIZES:
            path = work / f"forest-{trees}.joblib"
            model = RandomForestClassifier(trees, max_depth=depth, random_state=0)
            joblib.dump(model.fit(iris_rows(150), [i % 3 for i in range(150)]), path)
            files.append(path)
        csv = work / "train.csv"
        csv.write_bytes(classification_csv(rows=400))
        proc = self.start()
        try:
            for c in (1.0, 0.5):  # versions 1 and 2 of the served model
                self.registry.upload("soak", write_skops(work / f"soak-{c}.skops",
                                                         iris_model(C=c)), {})
            self.registry.request("PUT", "/api/v1/models/soak/aliases/production",
                                  json_body={"version": 1})
            dataset = self.registry.upload_dataset(csv)["id"]
            threads = [threading.Thread(target=self.uploader, args=(i, files))
                       for i in range(UPLOADERS)]
            threads += [threading.Thread(target=self.predictor, args=(i,))
                        for i in range(PREDICTORS)]
            for period, action in ((20, lambda _: self.train(dataset)), (5, self.flip_alias),
                                   (1, self.dashboard), (10, self.status),
                                   (0.5, self.probe_health)):
                threads.append(threading.Thread(target=self.every, args=(period, action)))
            started = time.monotonic()
            for t in threads:
                t.start()
            minute_one = self.sample_at(started + min(60, self.seconds / 2), proc.pid)
            self.stop.wait(max(0.0, started + self.seconds - time.monotonic()))
            at_end = self.resources(proc.pid)
            self.stop.set()
            for t in threads:
                t.join(120)
            restarts = self.restarts()
            jobs = self.registry.request("GET", "/api/v1/jobs", query={"limit": 1000})["jobs"]
        finally:
            self.stop.set()
            proc.terminate()
            proc.wait(60)
        doctor = subprocess.run([*self.command, "doctor"], env=self.env, capture_output=True,
                                text=True, timeout=600)
        self.report(minute_one, at_end, restarts, jobs, doctor, proc.returncode)
        return 0

    def sample_at(self, when: float, pid: int) -> dict[str, tuple[int, int]]:
        self.stop.wait(max(0.0, when - time.monotonic()))
        return self.resources(pid)

    def report(self, first: dict[str, tuple[int, int]], last: dict[str, tuple[int, int]],
               restarts: int, jobs: list[dict[str, Any]], doctor: subprocess.CompletedProcess[str],
               exit_code: int) -> None:
        c = self.tally.counts
        temp_left = [p for p in (self.home / "tmp").iterdir()] if (self.home / "tmp").exists() \
            else []
        kinds = Counter(f"{j['kind']}:{j['status']}" for j in jobs)
        rows = [
            ("supervisor restarts", restarts, "0"),
            ("5xx answers", c["5xx"], "0"),
            ("failed predictions", f"{c['predictions_failed']} of {c['predictions']}", "0"),
            *((f"slowest health, {role}", f"{seconds:.3f} s", "< 1 s")
              for role, seconds in self.tally.slowest_health.items()),
            ("health probes unanswered", c["health_failed"], "0"),
            ("temp files left", len(temp_left), "0"),
            ("doctor clean", doctor.returncode == 0, "True"),
            ("serve exit code", exit_code, "0"),
        ]
        print(f"soak: {self.seconds / 60:.1f} min, {UPLOADERS} uploaders, {PREDICTORS} "
              f"predictors, {os.cpu_count()} cores")
        print(f"{'figure':<28} {'value':>22}  goal")
        for name, value, goal in rows:
            print(f"{name:<28} {value!s:>22}  {goal}")
        print(f"{'process':<12} {'RSS min 1':>10} {'RSS end':>10} {'growth':>7} "
              f"{'fds min 1':>9} {'fds end':>8} {'growth':>7}  (goal < 10 %)")
        for role in sorted(set(first) | set(last)):
            (r1, f1), (r2, f2) = first.get(role, (0, 0)), last.get(role, (0, 0))
            print(f"{role:<12} {r1 >> 20:>8} M {r2 >> 20:>8} M {_growth(r1, r2):>7} "
                  f"{f1:>9} {f2:>8} {_growth(f1, f2):>7}")
        print("counts: " + ", ".join(f"{k}={v}" for k, v in sorted(c.items())))
        print("jobs: " + ", ".join(f"{k}={v}" for k, v in sorted(kinds.items())))
        for line, count in self.tally.errors.most_common(10):
            print(f"error x{count}: {line}")
        if doctor.returncode != 0:
            print(doctor.stdout[-2000:])


def _growth(before: int, after: int) -> str:
    return f"{100 * (after - before) / before:+.1f}%" if before else "-"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--binary", type=Path, help="the built modeldepot (default: source)")
    args = parser.parse_args()
    command = [str(args.binary.resolve())] if args.binary else [sys.executable, "-m", "app"]
    with tempfile.TemporaryDirectory(prefix="modeldepot-soak-") as tmp:
        work = Path(tmp)
        return Soak(work / "home", command, args.minutes).run(work)


if __name__ == "__main__":
    sys.exit(main())
