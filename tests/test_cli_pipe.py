"""`modeldepot models show x | head`: a reader that closes the pipe ends the command quietly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from app.client import Client
from tests.conftest import TOKEN
from tests.live import free_port, server_env, start_registry, stop


def test_a_closed_pipe_ends_models_show_quietly(tmp_path: Path) -> None:
    home, port = tmp_path / "home", free_port()
    proc = start_registry(home, port)
    try:
        Client(f"http://127.0.0.1:{port}", TOKEN).request(
            "POST", "/api/v1/models", json_body={"name": "x", "description": "d" * 5000})
        read_end, write_end = os.pipe()
        os.close(read_end)  # `head` has read its lines and gone
        try:
            shown = subprocess.run(
                [sys.executable, "-m", "app", "models", "show", "x"], stdout=write_end,
                stderr=subprocess.PIPE, env=server_env(home, MODELDEPOT_REGISTRY_PORT=str(port)),
                timeout=60)
        finally:
            os.close(write_end)
    finally:
        stop(proc)
    assert shown.stderr == b""
    assert shown.returncode == 141  # as if SIGPIPE had ended it, like other command-line tools
