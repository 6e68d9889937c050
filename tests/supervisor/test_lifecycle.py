"""The real supervisor, as people run it: restarts, signals, orphans, one instance per data dir."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.conftest import TOKEN
from tests.live import process_gone, wait_until
from tests.supervisor.conftest import Serve, port_free


@pytest.mark.slow
@pytest.mark.parametrize("role", ["registry", "inference"])
def test_a_killed_child_is_back_and_ready_within_5_s(running: Serve, role: str) -> None:
    old = running.child_pids()
    os.kill(old[role], signal.SIGKILL)
    killed_at = time.monotonic()

    def back() -> bool:
        info = running.info()
        child = info.get("children", {}).get(role, {})
        answers = (running.registry_health() if role == "registry"
                   else running.inference_ready()) == 200
        return child.get("pid") not in (None, old[role]) and child.get("ready") and answers

    wait_until(back, 5.0, f"{role} restarted and ready")
    assert time.monotonic() - killed_at < 5.0
    new = running.child_pids()
    assert new[role] != old[role]
    other = "inference" if role == "registry" else "registry"
    assert new[other] == old[other], "the other server must not be touched"
    assert running.info()["children"][role]["restarts"] == 1
    assert "restarting it now" in running.output()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_a_stop_signal_stops_everything_and_exits_0(running: Serve, sig: int) -> None:
    assert running.proc is not None
    pids = running.child_pids()
    running.proc.send_signal(sig)
    assert running.proc.wait(30) == 0
    assert all(process_gone(pid) for pid in pids.values())
    assert port_free(running.registry_port) and port_free(running.inference_port)
    assert not running.server_file.exists()


@pytest.mark.slow
def test_sigkill_of_the_supervisor_leaves_no_child_within_2_s(running: Serve) -> None:
    assert running.proc is not None
    pids = running.child_pids()
    running.proc.kill()
    running.proc.wait()
    wait_until(lambda: all(process_gone(p) for p in pids.values()), 2.0, "children gone")
    wait_until(lambda: port_free(running.registry_port) and port_free(running.inference_port),
               1.0, "ports free")


@pytest.mark.slow
def test_a_second_instance_on_the_same_data_dir_is_refused(running: Serve,
                                                           serve_factory: Any) -> None:
    assert running.proc is not None
    second = serve_factory(home=running.home)
    result = subprocess.run(second.command(), env=second.env(), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0
    assert "already running" in result.stderr
    assert str(running.proc.pid) in result.stderr
    assert f"http://127.0.0.1:{running.registry_port}" in result.stderr
    assert running.ready(), "the running one must be untouched"


@pytest.mark.slow
def test_second_instance_with_open_opens_the_running_dashboard(running: Serve, serve_factory: Any,
                                                               tmp_path: Any) -> None:
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.py"
    browser.write_text(f"import sys\nopen({str(opened)!r}, 'a').write(sys.argv[1] + '\\n')\n")
    second = serve_factory(home=running.home, args=["--open"],
                           extra_env={"BROWSER": f"{sys.executable} {browser} %s"})
    result = subprocess.run(second.command(), env=second.env(), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    url = opened.read_text().strip()
    assert url == f"http://127.0.0.1:{running.registry_port}/?token={TOKEN}"


@pytest.mark.parametrize("taken", ["registry_port", "inference_port"])
def test_a_port_in_use_is_a_clear_error(serve_factory: Any, taken: str) -> None:
    serve: Serve = serve_factory()
    port = getattr(serve, taken)
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", port))
        blocker.listen()
        result = subprocess.run(serve.command(), env=serve.env(), capture_output=True, text=True,
                                timeout=60)
    assert result.returncode != 0
    assert f"Port {port}" in result.stderr
    assert f"--{taken.replace('_', '-')}" in result.stderr
    assert f"MODELDEPOT_{taken.upper()}" in result.stderr
    assert not serve.server_file.exists()


@pytest.mark.slow
def test_status_and_stop(running: Serve) -> None:
    assert running.proc is not None
    env = running.env()
    home = ["--home", str(running.home)]
    status = subprocess.run([sys.executable, "-m", "app", "status", *home, "--json"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stdout + status.stderr
    report = json.loads(status.stdout)
    assert report["running"] and report["pid"] == running.proc.pid
    assert report["data_dir"] == str(running.home)
    assert report["disk"]["data_bytes"] > 0
    for role in ("registry", "inference"):
        child = report["children"][role]
        assert child["answering"] and child["ready"] and child["server_version"]
    human = subprocess.run([sys.executable, "-m", "app", "status", *home], env=env,
                           capture_output=True, text=True, timeout=60)
    assert "is running" in human.stdout and str(running.registry_port) in human.stdout

    stop = subprocess.run([sys.executable, "-m", "app", "stop", *home], env=env,
                          capture_output=True, text=True, timeout=60)
    assert stop.returncode == 0, stop.stderr
    assert running.proc.wait(5) == 0
    after = subprocess.run([sys.executable, "-m", "app", "status", *home], env=env,
                           capture_output=True, text=True, timeout=60)
    assert after.returncode == 3
    assert "not running" in after.stdout
