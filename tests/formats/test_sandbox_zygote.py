"""The sandbox zygote: one long-lived `python -m app sandbox-zygote` that forks each check.

Everything here is real: the zygote process, its forked children, their confinement (read back
from /proc), signals. What both kinds of child do alike is in tests/formats/test_sandbox.py.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import skops.io

from app.errors import InvalidModelFile, TrustRequired, UnsafeModel
from app.formats import SandboxLimits, inspect_upload, load_predictor
from app.formats.inspection import Inspection
from app.formats.zygote_client import Zygote, shared_zygote, shutdown_zygote
from app.store.blobs import BlobStore
from tests.formats.test_pickle import OsSystem
from tests.formats.test_sandbox import big_forest, blobs, write_crashing_tree  # noqa: F401
from tests.live import process_gone, wait_until

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")


def direct_children(parent: int) -> list[int]:
    """Live processes whose parent is `parent` (started by any of its threads), from /proc."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{parent}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{parent}/task/{task}/children") as f:
                found.extend(int(pid) for pid in f.read().split())
        except OSError:
            continue
    return [pid for pid in found if not process_gone(pid)]


def command_line(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [part.decode() for part in f.read().split(b"\0") if part]
    except OSError:
        return []


def sandbox_processes_of_this_test_process() -> list[int]:
    return [pid for pid in direct_children(os.getpid())
            if {"sandbox-child", "sandbox-zygote"} & set(command_line(pid))]


@pytest.fixture
def zygote(blobs: BlobStore) -> Iterator[Zygote]:  # noqa: F811
    """The shared zygote, started if needed; afterwards: nothing left running below it or below
    this process except the zygote itself, and no temp file left."""
    z = shared_zygote()
    yield z
    current = shared_zygote()
    assert current.pid is not None
    wait_until(lambda: direct_children(current.pid or 0) == [], 10, "the zygote's children end")
    wait_until(lambda: sandbox_processes_of_this_test_process() == [current.pid], 10,
               "only the zygote is left of the sandbox processes")
    assert sorted(blobs.tmp.iterdir()) == []


def write_forest(forest: Any, tmp_path: Path, name: str = "forest.joblib") -> Path:
    path = tmp_path / name
    joblib.dump(forest, path)
    return path


def in_background(work: Callable[[], Inspection]) -> tuple[threading.Thread, list[Any]]:
    """Run `work` in a thread; the list gets its result or its exception."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(work())
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def a_child_of(pid: int) -> int:
    found: list[int] = []

    def appeared() -> bool:
        found[:] = direct_children(pid)
        return bool(found)

    wait_until(appeared, 30, f"a sandbox child under {pid}", interval=0.005)
    return found[0]


def test_checks_run_in_children_forked_by_one_single_threaded_zygote(
    zygote: Zygote, logreg: Any, blobs: BlobStore, tmp_path: Path  # noqa: F811
) -> None:
    path = tmp_path / "m.skops"
    path.write_bytes(skops.io.dumps(logreg))
    for _ in range(3):
        result = inspect_upload(path, trust=False, receive=blobs.receive)
        assert result.format == "skops" and result.signature is not None
    assert shared_zygote() is zygote and zygote.alive
    assert zygote.pid is not None
    assert command_line(zygote.pid)[-2:] == ["sandbox-zygote", str(os.getpid())]
    # Forking is only safe without other threads: onnxruntime's is started in each child.
    assert len(os.listdir(f"/proc/{zygote.pid}/task")) == 1
    with open(f"/proc/{zygote.pid}/environ", "rb") as f:
        environment = f.read().split(b"\0")
    assert b"OPENBLAS_NUM_THREADS=1" in environment
    assert not any(entry.startswith(b"MODELDEPOT_TOKEN=") for entry in environment)


def test_several_checks_at_once(
    zygote: Zygote, logreg: Any, forest: Any, rows: np.ndarray, blobs: BlobStore,  # noqa: F811
    tmp_path: Path,
) -> None:
    skops_file = tmp_path / "m.skops"
    skops_file.write_bytes(skops.io.dumps(logreg))
    joblib_file = write_forest(forest, tmp_path)
    marker = tmp_path / "marker"
    hostile = tmp_path / "hostile.pkl"
    import pickle

    hostile.write_bytes(pickle.dumps(OsSystem(marker)))
    work: list[tuple[Path, bool]] = [(skops_file, False), (joblib_file, True), (hostile, True),
                                     (joblib_file, False), (skops_file, False), (joblib_file, True)]

    def check(item: tuple[Path, bool]) -> Inspection | Exception:
        try:
            return inspect_upload(item[0], trust=item[1], receive=blobs.receive)
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(len(work)) as pool:
        results = list(pool.map(check, work))
    assert [type(r).__name__ for r in results] == [
        "Inspection", "Inspection", "UnsafeModel", "TrustRequired", "Inspection", "Inspection"]
    assert isinstance(results[2], UnsafeModel) and isinstance(results[3], TrustRequired)
    copies = [r for r in results if isinstance(r, Inspection) and r.served is not None]
    assert len(copies) == 2
    for copy in copies:
        assert copy.served is not None
        predictor = load_predictor(copy.served.temp, "skops", signature=copy.signature)
        copy.served.temp.unlink()
        np.testing.assert_array_equal(predictor.predict(rows), forest.predict(rows))
    assert not marker.exists()
    assert shared_zygote() is zygote


def test_a_crash_is_reported_as_the_signal_and_the_zygote_serves_on(
    zygote: Zygote, forest: Any, big_forest: Any, blobs: BlobStore, tmp_path: Path  # noqa: F811
) -> None:
    with pytest.raises(InvalidModelFile) as info:
        inspect_upload(write_crashing_tree(forest, tmp_path / "bad.skops"), trust=False,
                       receive=blobs.receive)
    # SIGSEGV, unless a structure check refuses the tree before native code reads it.
    assert "SIGSEGV" in info.value.message or "node" in info.value.message, info.value.message
    # Whatever native bug a file finds, the child dies by a signal: here one sent to it.
    pid = zygote.pid
    assert pid is not None
    thread, outcome = in_background(lambda: inspect_upload(
        write_forest(big_forest, tmp_path), trust=True, receive=blobs.receive))
    os.kill(a_child_of(pid), signal.SIGSEGV)
    thread.join()
    assert isinstance(outcome[0], InvalidModelFile), outcome
    assert "crashed the process that checks it (SIGSEGV)" in outcome[0].message
    assert shared_zygote() is zygote and zygote.pid == pid
    served = inspect_upload(tmp_path / write_skops(forest, tmp_path), trust=False,
                            receive=blobs.receive)
    assert served.format == "skops"


def test_the_time_limit_ends_only_that_child(
    zygote: Zygote, logreg: Any, big_forest: Any, blobs: BlobStore, tmp_path: Path  # noqa: F811
) -> None:
    slow = write_forest(big_forest, tmp_path)
    quick = tmp_path / "m.skops"
    quick.write_bytes(skops.io.dumps(logreg))
    thread, outcome = in_background(lambda: inspect_upload(
        slow, trust=True, receive=blobs.receive, limits=SandboxLimits(seconds=0.1)))
    results = [inspect_upload(quick, trust=False, receive=blobs.receive) for _ in range(3)]
    thread.join()
    assert isinstance(outcome[0], InvalidModelFile), outcome
    assert "sandbox_seconds" in outcome[0].message
    assert all(r.format == "skops" for r in results)
    assert shared_zygote() is zygote
    assert inspect_upload(quick, trust=False, receive=blobs.receive).format == "skops"


def test_a_zygote_killed_mid_check_falls_back_and_is_started_again(
    zygote: Zygote, big_forest: Any, blobs: BlobStore, tmp_path: Path,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = write_forest(big_forest, tmp_path)
    killed = zygote.pid
    assert killed is not None
    with caplog.at_level(logging.WARNING, logger="app.formats.sandbox"):
        thread, outcome = in_background(lambda: inspect_upload(
            path, trust=True, receive=blobs.receive))
        a_child_of(killed)  # the check is under way in a forked child
        os.kill(killed, signal.SIGKILL)
        thread.join()
    result = outcome[0]
    assert isinstance(result, Inspection), outcome
    assert result.served is not None and result.served.format == "skops"
    result.served.temp.unlink()
    assert any("checked in a new process" in r.getMessage() for r in caplog.records)
    wait_until(lambda: process_gone(killed), 10, "the killed zygote is gone")
    # The next check starts a new zygote.
    again = inspect_upload(tmp_path / write_skops(big_forest, tmp_path), trust=False,
                           receive=blobs.receive)
    assert again.format == "skops"
    restarted = shared_zygote()
    assert restarted.alive and restarted.pid not in (None, killed)


def write_skops(model: Any, tmp_path: Path) -> str:
    (tmp_path / "model.skops").write_bytes(skops.io.dumps(model))
    return "model.skops"


@pytest.mark.parametrize("via_zygote", [True, False], ids=["zygote", "new-process"])
def test_a_forked_child_is_confined_like_a_new_one(
    zygote: Zygote, big_forest: Any, blobs: BlobStore, tmp_path: Path,  # noqa: F811
    via_zygote: bool,
) -> None:
    """Read back from /proc while the child works: seccomp filter, no_new_privs, the limits."""
    parent = zygote.pid if via_zygote else os.getpid()
    assert parent is not None
    limits = SandboxLimits(memory_mb=3000, seconds=90)
    thread, outcome = in_background(lambda: inspect_upload(
        write_forest(big_forest, tmp_path), trust=True, receive=blobs.receive, limits=limits,
        via_zygote=via_zygote))
    child = a_child_of(parent) if via_zygote else _sandbox_child_of_this_process()
    status: dict[str, str] = {}

    def confined() -> bool:
        with open(f"/proc/{child}/status") as f:
            for line in f.read().splitlines():
                key, _, value = line.partition(":")
                status[key] = value.strip()
        return status.get("Seccomp") == "2"

    wait_until(confined, 30, "the child installs its seccomp filter")
    with open(f"/proc/{child}/limits") as f:
        table = f.read()
    thread.join()
    assert isinstance(outcome[0], Inspection), outcome
    assert outcome[0].served is not None
    outcome[0].served.temp.unlink()
    assert status["NoNewPrivs"] == "1"
    for name, value in (("Max address space", str(3000 << 20)), ("Max cpu time", "90"),
                        ("Max open files", "64"), ("Max core file size", "0"),
                        ("Max file size", "0")):
        row = next(line for line in table.splitlines() if line.startswith(name))
        assert row.split()[len(name.split()):][:2] == [value, value], row


def _sandbox_child_of_this_process() -> int:
    found: list[int] = []

    def appeared() -> bool:
        found[:] = [pid for pid in direct_children(os.getpid())
                    if "sandbox-child" in command_line(pid)]
        return bool(found)

    wait_until(appeared, 30, "a sandbox-child process", interval=0.005)
    return found[0]


def test_the_zygote_ends_with_the_registry(tmp_path: Path) -> None:
    """Stopped in order (atexit / shutdown_zygote) it exits at once; if the registry is killed,
    PR_SET_PDEATHSIG ends it."""
    script = ("import sys\n"
              "from app.formats.zygote_client import shared_zygote\n"
              "print(shared_zygote().pid, flush=True)\n"
              "sys.stdin.readline()\n")
    for how in ("exit", "kill"):
        registry = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE)
        assert registry.stdout is not None and registry.stdin is not None
        pid = int(registry.stdout.readline())
        assert not process_gone(pid)
        if how == "exit":
            registry.stdin.write(b"\n")
            registry.stdin.close()
            assert registry.wait(30) == 0
        else:
            registry.kill()
            registry.wait()
            registry.stdin.close()
        registry.stdout.close()
        wait_until(functools.partial(process_gone, pid), 30,
                   f"the zygote ends when the registry does ({how})")


def test_shutdown_ends_the_zygote_and_the_next_check_starts_another(
    logreg: Any, blobs: BlobStore, tmp_path: Path  # noqa: F811
) -> None:
    first = shared_zygote()
    pid = first.pid
    assert pid is not None
    shutdown_zygote()
    assert not first.alive and process_gone(pid)
    assert sandbox_processes_of_this_test_process() == []
    path = tmp_path / "m.skops"
    path.write_bytes(skops.io.dumps(logreg))
    assert inspect_upload(path, trust=False, receive=blobs.receive).format == "skops"
    assert shared_zygote().pid not in (None, pid)


def test_a_zygote_that_dies_before_forking_is_not_restarted_for_every_check(
    logreg: Any, blobs: BlobStore, tmp_path: Path, caplog: pytest.LogCaptureFixture,  # noqa: F811
) -> None:
    """As if it could not import: each check would pay its start, then fall back."""
    shutdown_zygote()
    doomed = shared_zygote()
    assert doomed.pid is not None
    os.kill(doomed.pid, signal.SIGKILL)
    wait_until(lambda: not doomed.alive, 30, "the registry sees the zygote end")
    path = tmp_path / "m.skops"
    path.write_bytes(skops.io.dumps(logreg))
    with caplog.at_level(logging.WARNING, logger="app.formats.sandbox"):
        for _ in range(2):
            assert inspect_upload(path, trust=False, receive=blobs.receive).format == "skops"
            assert sandbox_processes_of_this_test_process() == []
    assert sum("not yet retried" in r.getMessage() for r in caplog.records) == 2
    shutdown_zygote()  # an orderly stop forgets the failure
    assert inspect_upload(path, trust=False, receive=blobs.receive).format == "skops"
    assert shared_zygote().forked_any
