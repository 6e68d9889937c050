"""Two real boxes: registries and inference servers in their own processes over their own data
dirs. The commands a person types (keys, export, import) move models from one to the other; the
same files, metadata and aliases arrive, and both inference servers give identical predictions."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app.client import Client
from app.config import Paths
from app.store import Store
from app.training.twin_build import build_twin
from tests.conftest import TOKEN
from tests.live import free_ports, server_env, start_inference, start_registry, stop, wait_until
from tests.models import iris_model, iris_rows, write_joblib, write_skops

# What a version is, wherever it lives; the rest (number, dates, status, origin, warnings from
# this box's import) is local.
CARRIED = ("sha256", "size", "format", "format_detail", "signature", "metrics", "params", "tags",
           "description", "source", "imported_globals")


@dataclass
class LiveBox:
    home: Path
    registry_port: int
    inference_port: int

    @property
    def registry(self) -> Client:
        return Client(f"http://127.0.0.1:{self.registry_port}", TOKEN)

    @property
    def inference(self) -> Client:
        return Client(f"http://127.0.0.1:{self.inference_port}", TOKEN)

    def cli(self, *args: str) -> str:
        """`modeldepot ARGS` against this box, as a person runs it; its stdout."""
        done = subprocess.run(
            [sys.executable, "-m", "app", *args, "--home", str(self.home)]
            + (["--registry-port", str(self.registry_port)] if args[0] in ("export", "import")
               else []),
            env=server_env(self.home), capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stdout


@pytest.fixture
def boxes(tmp_path: Path) -> Iterator[tuple[LiveBox, LiveBox]]:
    ports = free_ports(4)
    a = LiveBox(tmp_path / "a" / "home", ports[0], ports[1])
    b = LiveBox(tmp_path / "b" / "home", ports[2], ports[3])
    a.cli("keys", "create", "--name", "central")
    b.cli("keys", "trust", a.cli("keys", "show").strip(), "--name", "central")
    procs = []
    try:
        for box in (a, b):
            procs.append(start_registry(box.home, box.registry_port, MODELDEPOT_TWINS="false"))
            procs.append(start_inference(box.home, box.inference_port))
        yield a, b
    finally:
        for proc in procs:
            stop(proc)


def _publish(a: LiveBox, tmp: Path) -> int:
    """iris v1 (production, with a verified twin), iris v2 (staging), a trusted pickle."""
    client = a.registry
    meta = {"metrics": {"accuracy": 0.97}, "params": {"C": 1.0}, "tags": {"team": "risk"},
            "description": "first"}
    first = client.upload("iris", write_skops(tmp / "v1.skops"), meta)
    client.upload("iris", write_skops(tmp / "v2.skops", iris_model(C=0.2)), {})
    client.upload("pick", write_joblib(tmp / "p.joblib", iris_model(C=0.5)), {"trust": True})
    client.request("PUT", "/api/v1/models/iris/aliases/production", json_body={"version": 1})
    client.request("PUT", "/api/v1/models/iris/aliases/staging", json_body={"version": 2})
    store = Store(Paths(a.home))
    try:
        version_id = store.get_version("iris", 1).id
    finally:
        store.close()
    assert build_twin(str(a.home), version_id)["status"] == "verified"
    return int(first["version"])


def _versions(box: LiveBox, model: str) -> dict[str, Any]:
    page = box.registry.request("GET", f"/api/v1/models/{model}/versions")
    return {v["sha256"]: v for v in page["versions"]}


def _predict(box: LiveBox, model: str, version: str | None = None) -> Any:
    path = f"/v1/models/{model}" + (f"/versions/{version}" if version else "")
    return box.inference.request("POST", path + "/predict",
                                 json_body={"instances": iris_rows(20).tolist(), "proba": True})


def _engine(box: LiveBox, model: str, version: str | None) -> str:
    path = f"/v1/models/{model}" + (f"/versions/{version}" if version else "")
    return str(box.inference.request("GET", path)["engine"])


def _revision(box: LiveBox) -> int:
    store = Store(Paths(box.home), readonly=True)
    try:
        return store.revision()
    finally:
        store.close()


@pytest.mark.slow
def test_round_trip_between_two_boxes(boxes: tuple[LiveBox, LiveBox], tmp_path: Path) -> None:
    a, b = boxes
    _publish(a, tmp_path)
    bundle = tmp_path / "models.mdbundle"
    a.cli("export", "iris", "pick@latest", "-o", str(bundle))
    assert not (tmp_path / "models.mdbundle.part").exists()

    preview = json.loads(b.cli("import", str(bundle), "--dry-run", "--json"))
    assert preview["dry_run"] and len(preview["added"]) == 3
    assert b.registry.request("GET", "/api/v1/models")["models"] == []

    report = json.loads(b.cli("import", str(bundle), "--json"))
    key_id = a.registry.request("GET", "/api/v1/keys")["key"]["id"]
    assert report["publisher"]["key"] == key_id and report["publisher"]["trusted_as"] == "central"
    assert [(x["model"], x["bundle_version"]) for x in report["added"]] == [
        ("iris", 1), ("iris", 2), ("pick", 1)]
    assert report["added"] == preview["added"]  # the preview told the truth
    assert sorted((x["alias"], x["to"]) for x in report["aliases"]) == [
        ("production", 1), ("staging", 2)]
    assert report["warnings"] == []  # signed by a trusted key: nothing to warn about

    for model in ("iris", "pick"):
        there, here = _versions(a, model), _versions(b, model)
        assert set(there) == set(here)
        for sha, version in here.items():
            assert {k: version[k] for k in CARRIED} == {k: there[sha][k] for k in CARRIED}
            assert version["origin"] == {"kind": "bundle", "publisher_key": key_id,
                                         "instance": "central", "model": model,
                                         "version": there[sha]["version"], "upstream": None}
        blob = next(iter(here))
        assert b.home.joinpath("blobs", blob[:2], blob).read_bytes() == \
            a.home.joinpath("blobs", blob[:2], blob).read_bytes()
    iris_a = a.registry.request("GET", "/api/v1/models/iris")
    iris_b = b.registry.request("GET", "/api/v1/models/iris")
    assert iris_b["aliases"] == iris_a["aliases"] == {"production": 1, "staging": 2}
    # The verified twin travelled with its (signed) version and serves at once.
    first = a.registry.request("GET", "/api/v1/models/iris/versions/1")
    assert first["twin"]["status"] == "verified"
    assert _versions(b, "iris")[first["sha256"]]["twin"] == first["twin"]

    wait_until(lambda: _served(b, "pick"), 10, "box b serves the imported models")
    served = (("iris", None), ("iris", "staging"), ("pick", None))
    # Load caches do not travel (they belong to a box's library versions): box b writes its own,
    # and a linear model then moves from its travelled twin to its arrays, as on box a.
    wait_until(lambda: all(_engine(b, m, v) == _engine(a, m, v) for m, v in served), 60,
               "box b serves each model through what box a serves it")
    for model, version in served:
        mine, theirs = _predict(a, model, version), _predict(b, model, version)
        assert mine["predictions"] == theirs["predictions"]
        assert mine["probabilities"] == theirs["probabilities"]

    before = (_revision(b), _versions(b, "iris"), _versions(b, "pick"))
    again = json.loads(b.cli("import", str(bundle), "--json"))
    assert again["added"] == [] and again["aliases"] == []
    assert len(again["present"]) == 3
    assert (_revision(b), _versions(b, "iris"), _versions(b, "pick")) == before


def _served(box: LiveBox, model: str) -> bool:
    try:
        _predict(box, model)
    except Exception:
        return False
    return True


@pytest.mark.slow
def test_an_unsigned_bundle_arrives_with_a_warning_on_each_version(
        boxes: tuple[LiveBox, LiveBox], tmp_path: Path) -> None:
    a, b = boxes
    _publish(a, tmp_path)
    bundle = tmp_path / "unsigned.mdbundle"
    a.cli("export", "iris@production", "-o", str(bundle), "--no-sign")
    report = json.loads(b.cli("import", str(bundle), "--json", "--no-aliases"))
    assert report["publisher"]["key"] is None and report["aliases"] == []
    [version] = _versions(b, "iris").values()
    assert version["origin"]["publisher_key"] == "unsigned"
    assert any("unsigned bundle" in w for w in version["warnings"])
    # Unsigned, so the twin did not travel: this box builds its own (not here: twins=false).
    assert version["twin"]["status"] == "none"
    assert b.registry.request("GET", "/api/v1/models/iris")["aliases"] == {}
