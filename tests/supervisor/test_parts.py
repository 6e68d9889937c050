"""The supervisor's parts, in-process: lock, discovery file, backoff, environment, crash loop."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.config import Settings
from app.supervisor import loop
from app.supervisor.children import INFERENCE, REGISTRY, ChildSpec, child_environment, kill_group
from app.supervisor.discovery import read_server_file, remove_server_file, write_server_file
from app.supervisor.lock import InstanceLock, holder
from app.supervisor.notify import Notifier
from tests.live import free_ports

HEAVY = ("flask", "fastapi", "sklearn", "numpy", "uvicorn", "waitress", "starlette", "pydantic",
         "scipy", "onnxruntime", "skops", "jinja2", "werkzeug")


def test_the_supervisor_imports_nothing_heavy() -> None:
    code = ("import sys, app.cli, app.supervisor.commands, app.supervisor.loop, "
            "app.parentwatch, app.supervisor.browser\n"
            "app.cli.build_parser()\n"
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_one_lock_per_data_dir(tmp_path: Path) -> None:
    first, second = InstanceLock(tmp_path), InstanceLock(tmp_path)
    assert holder(tmp_path) is None
    assert first.acquire()
    try:
        assert not second.acquire(patience=0.1)
        assert holder(tmp_path) == os.getpid()
    finally:
        first.release()
    assert holder(tmp_path) is None
    assert second.acquire(patience=0.1)
    second.release()


def test_a_lock_left_by_a_dead_process_is_stale(tmp_path: Path) -> None:
    code = ("import sys; from pathlib import Path; from app.supervisor.lock import InstanceLock; "
            "assert InstanceLock(Path(sys.argv[1])).acquire(); import os; os._exit(0)")
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True)
    assert (tmp_path / "serve.lock").read_text().strip()  # the dead holder's pid is still there
    assert holder(tmp_path) is None
    lock = InstanceLock(tmp_path)
    assert lock.acquire(patience=0.1)
    lock.release()


def test_server_file_is_replaced_whole_and_removed_only_by_its_owner(tmp_path: Path) -> None:
    path = tmp_path / "server.json"
    write_server_file(path, {"pid": 1, "registry_url": "http://127.0.0.1:1"})
    write_server_file(path, {"pid": 2, "registry_url": "http://127.0.0.1:2"})
    assert read_server_file(path) == {"pid": 2, "registry_url": "http://127.0.0.1:2"}
    assert [p.name for p in tmp_path.iterdir()] == ["server.json"]  # no temp file left
    remove_server_file(path, 1)
    assert path.exists()
    remove_server_file(path, 2)
    assert not path.exists()
    path.write_text("{not json")
    assert read_server_file(path) is None


def test_backoff_doubles_and_is_capped() -> None:
    delays = [loop.backoff_delay(n) for n in range(1, 12)]
    assert delays[:4] == [0.5, 1.0, 2.0, 4.0]
    assert max(delays) == loop.BACKOFF_CAP == delays[-1]


def test_children_get_the_resolved_settings_and_not_systemds_socket(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch
                                                                    ) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")
    monkeypatch.setenv("MODELDEPOT_MAX_BATCH_SIZE", "3")  # stale: not part of these settings
    settings = Settings(home=tmp_path, registry_port=1234, token="t" * 20)
    env = child_environment(settings)
    assert "NOTIFY_SOCKET" not in env and "WATCHDOG_USEC" not in env
    assert env["MODELDEPOT_REGISTRY_PORT"] == "1234"
    assert env["MODELDEPOT_HOME"] == str(tmp_path)
    assert env["MODELDEPOT_MAX_BATCH_SIZE"] == "64"
    assert env["MODELDEPOT_SUPERVISOR_PID"] == str(os.getpid())


@pytest.mark.slow
def test_a_child_failing_at_start_up_backs_off_into_a_crash_loop_while_the_other_serves(
        tmp_path: Path) -> None:
    registry_port, inference_port = free_ports(2)
    settings = Settings(home=tmp_path / "home", registry_port=registry_port,
                        inference_port=inference_port, token="t" * 32)
    # A sub-command that does not exist: the child exits at once, every time.
    broken = ChildSpec("no-such-command", "inference_port", INFERENCE.live_path,
                       INFERENCE.ready_path, "broken server")
    sup = loop.Supervisor(settings, Notifier({}), specs=(REGISTRY, broken))
    registry, failing = sup.children
    try:
        for child in sup.children:
            sup.start(child)
        deadline = time.monotonic() + 60
        while not (failing.state == "crash_loop" and registry.ready):
            assert time.monotonic() < deadline, sup.status_line()
            sup.keep_children_alive()
            time.sleep(0.05)
        assert failing.start_failures == loop.CRASH_LOOP_AFTER
        assert failing.last_exit == "exit code 2"
        assert failing.next_start - time.monotonic() > 1.0  # backing off, not spinning
        assert registry.state == "healthy" and registry.starts == 1
        assert sup.settled()  # READY=1 goes out: the registry serves despite the other
        assert "broken server" not in sup.status_line()
        assert "no-such-command crash loop (exit code 2, 3 failures)" in sup.status_line()
        assert sup.snapshot()["children"]["no-such-command"]["state"] == "crash_loop"
    finally:
        for child in sup.children:
            if child.process is not None:
                kill_group(child.process)
                child.process.wait()


def test_each_inference_worker_is_a_child_of_its_own(tmp_path: Path) -> None:
    from app.supervisor.children import child_specs

    one = child_specs(Settings(home=tmp_path))
    assert [s.key for s in one] == ["registry", "inference"]
    three = child_specs(Settings(home=tmp_path, inference_workers=3))
    assert [s.key for s in three] == ["registry", "inference", "inference-2", "inference-3"]
    assert {s.role for s in three[1:]} == {"inference"}
    assert [s.label for s in three[1:]] == [f"inference worker {n}" for n in (1, 2, 3)]
