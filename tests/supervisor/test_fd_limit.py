"""`serve` under the open-file limit a systemd service gets by default (1024, soft and hard):
large models upload, a large forest trains and serves, and nothing restarts.

Inspection used to open an uploaded file once per array, so one 2,000-tree forest took every
descriptor and came back as a 422 blaming the file (see docs/operations.md). This test holds the
whole path to that limit; the servers cannot raise it (hard = soft).
"""

from __future__ import annotations

import resource
import subprocess
from pathlib import Path
from typing import Any

import joblib
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from app.client import Client
from tests.conftest import TOKEN
from tests.models import iris_rows
from tests.registry.jobdata import RF, classification_csv, train_body, wait_until
from tests.supervisor.conftest import Serve

pytestmark = pytest.mark.slow
LIMIT = 1024


def limit_descriptors() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, LIMIT))


class LimitedServe(Serve):
    def start(self) -> Serve:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.command(), env=self.env(), stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT,
                                         preexec_fn=limit_descriptors)
        return self


def soft_limit(pid: int) -> int:
    with open(f"/proc/{pid}/limits") as f:
        line = next(line for line in f if line.startswith("Max open files"))
    return int(line.split()[3])


def forest(path: Path, trees: int, depth: int) -> Path:
    X, y = iris_rows(150), [i % 3 for i in range(150)]
    joblib.dump(RandomForestClassifier(trees, max_depth=depth, random_state=0).fit(X, y), path)
    return path


def long_pipeline(path: Path, steps: int) -> Path:
    X, y = iris_rows(150), [i % 3 for i in range(150)]
    model = make_pipeline(*[StandardScaler() for _ in range(steps - 1)],
                          LogisticRegression(max_iter=300))
    joblib.dump(model.fit(X, y), path)
    return path


def test_serve_under_a_1024_descriptor_limit(serve_factory: Any, tmp_path: Path) -> None:
    plain: Serve = serve_factory()
    serve = LimitedServe(plain.home, plain.registry_port, plain.inference_port, plain.log)
    try:
        serve.start()
        pids = serve.wait_ready()
        assert soft_limit(pids["registry"]) == LIMIT
        registry = Client(f"http://127.0.0.1:{serve.registry_port}", TOKEN)
        for name, path in [("forest", forest(tmp_path / "forest.joblib", 2000, 3)),
                           ("pipeline", long_pipeline(tmp_path / "pipe.joblib", 50))]:
            version = registry.upload(name, path, {"trust": True})
            assert version["status"] == "ready", version

        csv = tmp_path / "train.csv"
        csv.write_bytes(classification_csv(rows=400))
        dataset = registry.upload_dataset(csv)
        job = registry.request("POST", "/api/v1/jobs", json_body=train_body(
            dataset["id"], model="big", estimator=RF, params={"n_estimators": 500},
            alias="production"))
        done = wait_until(lambda: (j := registry.request("GET", f"/api/v1/jobs/{job['id']}"))
                          ["status"] in ("succeeded", "failed") and j, "the job ends", 600)
        assert done["status"] == "succeeded", done
        inference = Client(f"http://127.0.0.1:{serve.inference_port}", TOKEN)
        answer = wait_until(lambda: _predict(inference), "the trained forest is served", 60)
        assert answer["model"] == "big" and len(answer["predictions"]) == 2
        assert serve.child_pids() == pids, serve.output()  # nothing was restarted
    finally:
        serve.cleanup()


def _predict(client: Client) -> Any:
    try:
        return client.request("POST", "/v1/models/big/predict",
                              json_body={"instances": [[0.1, 0.2, 0.3, 0.4]] * 2})
    except Exception:
        return None
