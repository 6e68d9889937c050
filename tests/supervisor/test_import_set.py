"""What the long-lived processes import at start (issue 18: idle memory), checked in a fresh
interpreter through sys.modules, and the supervisor's socket health probe that replaced
http.client. No memory figure is asserted: benchmarks/bench_startup.py prints those."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from app import __version__
from app.supervisor.health import Probe, parse_answer, probe
from tests.live import free_port, free_ports, start_registry, stop


def modules_after(code: str, watched: tuple[str, ...]) -> list[str]:
    """Run `code` in a new interpreter, then name which of `watched` it imported."""
    script = (f"import sys\n{code}\n"
              f"print(__import__('json').dumps([m for m in {watched!r} if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True)
    loaded: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return loaded


CLIENT_SIDE = ("http.client", "ssl", "app.client", "multiprocessing", "app.cli.models",
               "app.cli.jobs", "app.cli.fleet", "app.cli.mirror", "app.cli.upkeep")


def test_serve_imports_only_the_server_commands() -> None:
    # main() parses `serve --help` the way it parses `serve`, then exits before starting anything.
    code = ("import app.cli, app.supervisor.commands, app.supervisor.loop\n"
            "try:\n    app.cli.main(['serve', '--help'])\nexcept SystemExit:\n    pass")
    assert modules_after(code, CLIENT_SIDE) == []


def test_client_commands_still_find_their_modules() -> None:
    code = ("import app.cli\n"
            "try:\n    app.cli.main(['models', '--help'])\nexcept SystemExit:\n    pass")
    assert modules_after(code, ("app.cli.models", "app.cli.jobs", "app.cli.mirror")) == [
        "app.cli.models", "app.cli.jobs", "app.cli.mirror"]


def test_registry_app_leaves_cryptography_and_the_job_executor_for_first_use(
        tmp_path: Path) -> None:
    code = ("from app.config import resolve\nfrom app.registry.app import create_app\n"
            f"create_app(resolve({{'home': {str(tmp_path)!r}}}))")
    assert modules_after(code, ("cryptography", "flask_executor")) == []


def test_signing_still_loads_cryptography_when_used(tmp_path: Path) -> None:
    code = ("from app.config import Paths\nfrom app.fleet.keys import create_key, load_private\n"
            f"paths = Paths(__import__('pathlib').Path({str(tmp_path)!r}))\n"
            "key = create_key(paths, 'box')\nprivate, public = load_private(paths)\n"
            "assert public == key and key.verify(private.sign(b'x'), b'x')\n"
            "assert not key.verify(private.sign(b'x'), b'y')")
    assert modules_after(code, ("cryptography",)) == ["cryptography"]


def test_probe_reads_a_real_registry_and_a_closed_port(tmp_path: Path) -> None:
    port, closed = free_ports(2)
    proc = start_registry(tmp_path / "home", port)
    try:
        answer = probe("127.0.0.1", port, "/api/v1/health")
        assert answer == Probe(200, {"status": "ok", "version": __version__})
        assert probe("0.0.0.0", port, "/no/such/route").status == 404
    finally:
        stop(proc)
    assert probe("127.0.0.1", closed, "/api/v1/health") == Probe(None)
    assert probe("127.0.0.1", free_port(), "/api/v1/health", timeout=0.2).status is None


def test_parse_answer_takes_only_what_the_answer_says() -> None:
    body = b'{"ready": false}'
    head = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
    assert parse_answer(head + b"content-length: %d\r\n\r\n" % len(body) + body) == \
        Probe(503, {"ready": False})
    # Cut short: the status stands, the half body is not parsed.
    assert parse_answer(head + b"content-length: 99\r\n\r\n" + body) == Probe(503)
    # Without a length (connection closed at the end) the body is what came.
    assert parse_answer(head + b"\r\n" + body) == Probe(503, {"ready": False})
    assert parse_answer(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nok") == Probe(200)
    assert parse_answer(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                        b"transfer-encoding: chunked\r\n\r\n5\r\n{}\r\n0\r\n\r\n") == Probe(200)
    assert parse_answer(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{bad") == \
        Probe(200)
    for not_http in (b"", b"SSH-2.0-OpenSSH\r\n\r\n", b"HTTP/1.1 2000 OK\r\n\r\n",
                     b"HTTP/1.1 200 OK"):
        assert parse_answer(not_http) == Probe(None)
