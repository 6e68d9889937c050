"""The built binary end to end: what a user on a machine with no Python does with it.

One `modeldepot serve` of dist/modeldepot is shared by the tests in file order (a onefile start
unpacks ~235 MB, so it is paid once): push, predict, train, swap aliases, lose a child, and at
the end SIGTERM, after which no process and no unpack folder may be left. Tests that need a serve
of their own (the launcher killed outright, the onedir build) start one.
"""

from __future__ import annotations

import csv
import io
import os
import signal
import socket
import struct
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.tree import DecisionTreeClassifier

from app.lazy_unpack import PARTS
from tests.bundle import client
from tests.bundle.client import auth, logged_confinement, move_alias, predict_v1, push
from tests.bundle.conftest import (
    Bundle,
    alive,
    command_line,
    emulated,
    process_tree,
    scaled,
)
from tests.live import wait_until
from tests.models import iris_model, iris_rows, write_skops
from tests.supervisor.conftest import port_free

pytestmark = pytest.mark.bundle

ROWS = iris_rows(6)
TRAIN_TIMEOUT = 180.0  # a spawned worker of a onefile binary imports scikit-learn cold


@pytest.fixture(scope="module")
def served(binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bundle]:
    bundle = Bundle(binary, tmp_path_factory.mktemp("served"))
    bundle.start()
    try:
        bundle.wait_ready()
        yield bundle
    finally:
        bundle.cleanup()


def served_version(bundle: Bundle, name: str) -> int | None:
    return client.served_version(bundle, name, ROWS)


# -- no Python, any directory ------------------------------------------------------------------

def test_one_shot_commands_need_no_python_and_leave_no_unpack_folder(served: Bundle) -> None:
    env = served.env
    assert not any(Path(d, "python3").exists() or Path(d, "python").exists()
                   for d in env["PATH"].split(os.pathsep))
    version = served.run("version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("modeldepot ")
    paths = served.run("paths")
    assert paths.returncode == 0, paths.stderr
    assert str(served.data) in paths.stdout  # MODELDEPOT_HOME, not the cwd or HOME
    assert served.run("token").stdout.strip() == served.token()
    # The running serve owns exactly one unpack folder; the one-shot runs removed theirs.
    assert len(served.unpack_dirs()) == 1, served.unpack_dirs()
    assert not any((served.base / "cwd").iterdir())  # nothing written to the working directory


def test_deferred_libraries_unpack_without_a_request(served: Bundle) -> None:
    """The onefile's deferred unpacking (app/lazy_unpack.py): numpy as the servers start,
    onnxruntime and the model libraries once they answer, in the background, so the first
    upload does not wait."""
    [folder] = served.tmp.glob("_MEI*")
    for part in PARTS:
        wait_until(lambda p=part: (folder / p.done_marker).exists(), scaled(60),  # type: ignore[misc]
                   f"{part.payload} unpacked in the background")
    for name in ("numpy", "numpy.libs", "sklearn", "scipy", "scipy.libs", "onnxruntime", "onnx"):
        assert (folder / name).is_dir(), name
    assert not list(folder.rglob("*.part"))
    assert not [p.payload for p in PARTS if (folder / p.payload).exists()]  # zips removed


def test_a_one_shot_command_unpacks_what_it_imports_and_removes_it(served: Bundle,
                                                                  tmp_path: Path) -> None:
    # `models push` converts a local pickle to skops first: scikit-learn in the CLI's own run.
    path = tmp_path / "iris.joblib"
    joblib.dump(iris_model(), path)
    result = served.run("models", "push", str(path), "--name", "cli-pushed", timeout=120)
    assert result.returncode == 0, result.stderr
    assert "(skops," in result.stdout, result.stdout
    assert len(served.unpack_dirs()) == 1, served.unpack_dirs()


def test_bundled_files_are_served(served: Bundle) -> None:
    docs = httpx.get(f"{served.inference}/docs", timeout=scaled(10))
    assert docs.status_code == 200 and "swagger-ui-bundle.js" in docs.text
    script = httpx.get(f"{served.inference}/static/swagger-ui-bundle.js", timeout=scaled(10))
    assert script.status_code == 200 and len(script.content) > 100_000
    dashboard = httpx.get(f"{served.registry}/", timeout=scaled(10))
    assert dashboard.status_code == 200 and "<html" in dashboard.text.lower()
    notices = served.run("notices")
    assert notices.returncode == 0, notices.stderr
    assert "scikit-learn" in notices.stdout and "onnxruntime" in notices.stdout


# -- push and predict ------------------------------------------------------------------------

def test_push_then_predict_through_v2_and_v1(served: Bundle, tmp_path: Path) -> None:
    model = iris_model()
    version = push(served, "iris", write_skops(tmp_path / "iris.skops", model))
    assert version["version"] == 1 and version["format"] == "skops"
    expected = model.predict(ROWS).tolist()

    wait_until(lambda: served_version(served, "iris") == 1, scaled(10), "version 1 served")
    body = predict_v1(served, "iris", ROWS)
    assert body["model"] == "iris" and body["version"] == 1
    assert body["predictions"] == expected

    r = httpx.post(f"{served.inference}/v2/models/iris/infer", timeout=scaled(30), json={"inputs": [
        {"name": "input", "shape": list(ROWS.shape), "datatype": "FP64",
         "data": ROWS.reshape(-1).tolist()}]})
    assert r.status_code == 200, r.text
    outputs = {o["name"]: o for o in r.json()["outputs"]}
    assert outputs["predict"]["data"] == expected
    assert outputs["predict"]["shape"] == [len(ROWS)]


def test_uploads_went_through_the_sandbox_and_its_confinement_is_stated(served: Bundle) -> None:
    """The push above was checked in a sandbox child, never in the registry: natively one the
    zygote forked. Under qemu-user the zygote declines to fork (the emulator's own thread shows
    in /proc/self/task) and each file is checked in a new `sandbox-child` process instead, which
    the registry logs; and the seccomp filter cannot be installed there (the child keeps its
    resource limits): the registry's log at start and `modeldepot doctor` must say so; natively
    they say the filter is on."""
    if emulated(served.binary):
        assert "this file is checked in a new process" in served.log.read_text(errors="replace")
    else:
        registry = served.child_pids()["registry"]
        zygotes = [pid for pid in process_tree(registry)[1:]
                   if "sandbox-zygote" in command_line(pid)]
        assert zygotes, [command_line(pid) for pid in process_tree(registry)]

    expected = "WITHOUT the seccomp filter" if emulated(served.binary) else "seccomp filter ("
    logged = logged_confinement(served)
    assert logged and all(expected in line for line in logged), logged
    assert ("WARNING" in logged[0]) == emulated(served.binary), logged
    doctor = served.run("doctor", "--no-mark", timeout=120)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    said = [line for line in doctor.stdout.splitlines()
            if line.startswith("Uploaded model files are checked with")]
    assert len(said) == 1 and expected in said[0], doctor.stdout


def test_alias_move_is_served_within_a_second(served: Bundle, tmp_path: Path) -> None:
    X, y = load_iris(return_X_y=True)
    first = push(served, "swap", write_skops(tmp_path / "a.skops", iris_model()))["version"]
    tree = DecisionTreeClassifier(max_depth=1, random_state=0).fit(X, y)
    second = push(served, "swap", write_skops(tmp_path / "b.skops", tree))["version"]
    move_alias(served, "swap", "production", first)
    wait_until(lambda: served_version(served, "swap") == first, scaled(10), "production -> first")

    moved = time.monotonic()
    move_alias(served, "swap", "production", second)
    wait_until(lambda: served_version(served, "swap") == second, scaled(5), "production -> second",
               interval=0.02)
    elapsed = time.monotonic() - moved
    # API.md promises 1 s; the extra half second is for a 2-core CI box busy with other tests.
    assert elapsed <= 1.5, f"the new version was served {elapsed:.2f} s after the alias moved"
    assert predict_v1(served, "swap", ROWS)["predictions"] == tree.predict(ROWS).tolist()


# -- training through the process pool inside the binary -------------------------------------

def iris_csv() -> bytes:
    X, y = load_iris(return_X_y=True)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["sepal_length", "sepal_width", "petal_length", "petal_width", "species"])
    for row, label in zip(X.tolist(), y.tolist(), strict=True):
        writer.writerow([*row, label])
    return out.getvalue().encode()


def pool_workers(bundle: Bundle) -> set[int]:
    """Processes below the registry that are multiprocessing's spawned workers of the binary."""
    registry = bundle.child_pids().get("registry")
    if registry is None:
        return set()
    return {pid for pid in process_tree(registry)[1:]
            if "--multiprocessing-fork" in command_line(pid)
            and os.path.realpath(f"/proc/{pid}/exe") == str(bundle.binary)}


@pytest.mark.reads_proc_exe  # pool_workers tells the binary's workers by /proc/PID/exe
def test_train_through_the_process_pool(served: Bundle) -> None:
    r = httpx.post(f"{served.registry}/api/v1/datasets", headers=auth(served), timeout=scaled(30),
                   files={"file": ("iris.csv", iris_csv(), "text/csv")})
    assert r.status_code in (200, 201), r.text
    dataset = r.json()
    assert dataset["id"]

    train = {"kind": "train", "model": "trained", "dataset": dataset["id"], "target": "species",
             "estimator": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 500},
             "alias": "production"}
    r = httpx.post(f"{served.registry}/api/v1/jobs", headers=auth(served), timeout=scaled(30),
                   json=train)
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]

    workers: set[int] = set()
    job: dict[str, Any] = {}

    def finished() -> bool:
        nonlocal job
        workers.update(pool_workers(served))
        served.remember()
        job = httpx.get(f"{served.registry}/api/v1/jobs/{job_id}", timeout=scaled(10)).json()
        return job["status"] in ("succeeded", "failed", "cancelled")

    wait_until(finished, scaled(TRAIN_TIMEOUT), "the training job finished", interval=0.05)
    assert job["status"] == "succeeded", job
    assert job["progress"] == 1 and isinstance(job["version"], int), job
    assert workers, "no spawned pool worker of the binary was seen under the registry"

    wait_until(lambda: served_version(served, "trained") == job["version"], scaled(10),
               "the trained version served")
    X, y = load_iris(return_X_y=True)
    predictions = predict_v1(served, "trained", X)["predictions"]
    assert np.mean(np.asarray(predictions) == y) > 0.9


# -- crashes and stops -----------------------------------------------------------------------

@pytest.mark.parametrize("role", ["registry", "inference"])
def test_a_killed_child_comes_back(served: Bundle, role: str) -> None:
    before = served.child_pids()[role]
    os.kill(before, signal.SIGKILL)
    wait_until(lambda: served.child_pids().get(role) not in (None, before), scaled(10),
               f"a new {role} process")
    wait_until(served.ready, scaled(10), f"the {role} ready again")
    assert not alive(before)
    assert served_version(served, "iris") == 1
    assert len(served.unpack_dirs()) == 1  # the restarted child reused the supervisor's folder


def test_sigterm_leaves_no_process_and_no_unpack_folder(served: Bundle) -> None:
    served.wait_ready()
    served.remember()
    tree = set(served.seen)
    assert len(tree) >= 4, tree  # launcher, supervisor, registry, inference (and pool workers)
    code = served.stop(signal.SIGTERM)
    assert code == 0, served.output()
    wait_until(lambda: not any(alive(pid) for pid in tree), scaled(5),
               f"every process gone: {[p for p in tree if alive(p)]}")
    assert port_free(served.registry_port) and port_free(served.inference_port)
    assert served.unpack_dirs() == []
    assert not (served.data / "server.json").exists()


@pytest.mark.reads_proc_exe  # the supervisor finds its launcher by /proc/PID/exe (frozen.py)
def test_killed_launcher_takes_everything_with_it(binary: Path, bundle_factory: Any) -> None:
    """SIGKILL of the onefile launcher: the supervisor below it stops the servers and removes
    the unpack folder the launcher can no longer remove."""
    bundle: Bundle = bundle_factory(binary).start()
    bundle.wait_ready()
    bundle.remember()
    tree = set(bundle.seen)
    assert bundle.unpack_dirs()
    bundle.stop(signal.SIGKILL)
    wait_until(lambda: not any(alive(pid) for pid in tree), scaled(15),
               f"every process gone: {[(p, command_line(p)) for p in tree if alive(p)]}")
    assert port_free(bundle.registry_port) and port_free(bundle.inference_port)
    assert bundle.unpack_dirs() == []


def receive_with_sender(sock: socket.socket, until: str, timeout: float) -> list[tuple[int, str]]:
    """sd_notify datagrams with the pid the kernel vouches for (SCM_CREDENTIALS), as systemd
    reads them to apply NotifyAccess=."""
    got: list[tuple[int, str]] = []
    deadline = time.monotonic() + timeout
    creds_size = socket.CMSG_SPACE(struct.calcsize("3i"))
    while time.monotonic() < deadline:
        try:
            data, ancillary, _, _ = sock.recvmsg(4096, creds_size)
        except TimeoutError:
            continue
        pid = next(struct.unpack("3i", d[:12])[0] for level, kind, d in ancillary
                   if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS)
        got.append((pid, data.decode()))
        if any(until in message.split("\n") for _, message in got):
            return got
    raise AssertionError(f"no {until} within {timeout} s; got {got}")


def test_sd_notify_comes_from_below_the_launcher(binary: Path, bundle_factory: Any) -> None:
    """Under systemd the unit's main PID is the onefile launcher, but READY=1 and WATCHDOG=1 come
    from the supervisor, its child: the unit needs NotifyAccess=all (NotifyAccess=main would drop
    every message and systemd would time the start out)."""
    unit = (Path(__file__).parents[2] / "packaging/systemd/modeldepot.service").read_text()
    assert "\nNotifyAccess=all\n" in unit
    address = f"@modeldepot-bundle-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        sock.bind("\0" + address[1:])
        sock.settimeout(0.2)
        bundle: Bundle = bundle_factory(binary)
        # As systemd does: WATCHDOG_PID is the pid it started, which then execs the binary.
        bundle.start(extra_env={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "1000000"},
                     wrapper=["/bin/sh", "-c", 'WATCHDOG_PID=$$ exec "$@"', "sh"])
        assert bundle.proc is not None
        launcher = bundle.proc.pid
        messages = receive_with_sender(sock, "READY=1", scaled(60))
        messages += receive_with_sender(sock, "WATCHDOG=1", scaled(5))
        senders = {pid for pid, _ in messages}
        assert launcher not in senders, messages
        assert len(senders) == 1, messages  # only the supervisor speaks, never a server
        supervisor = senders.pop()
        with open(f"/proc/{supervisor}/stat") as f:
            assert int(f.read().rsplit(")", 1)[1].split()[1]) == launcher
        assert bundle.stop(signal.SIGTERM) == 0
        stopping = receive_with_sender(sock, "STOPPING=1", scaled(5))
        assert {pid for pid, _ in stopping} == {supervisor}


def test_onedir_build_serves_and_stops(onedir_binary: Path, bundle_factory: Any,
                                       tmp_path: Path) -> None:
    bundle: Bundle = bundle_factory(onedir_binary).start()
    bundle.wait_ready()
    push(bundle, "iris", write_skops(tmp_path / "iris.skops"))
    wait_until(lambda: served_version(bundle, "iris") == 1, scaled(10), "version 1 served")
    bundle.remember()
    tree = set(bundle.seen)
    assert bundle.stop(signal.SIGTERM) == 0, bundle.output()
    wait_until(lambda: not any(alive(pid) for pid in tree), scaled(5), "every process gone")
    assert bundle.unpack_dirs() == []  # a onedir build never unpacks
