"""`serve` with inference_workers=2: two inference processes on one port, each its own child."""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import pytest

from tests.live import process_gone, wait_until


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT sharing")
def test_two_workers_serve_and_a_killed_one_is_restarted_alone(serve_factory: Any) -> None:
    serve = serve_factory(args=["--inference-workers", "2"]).start()
    pids = serve.wait_ready()
    assert set(pids) == {"registry", "inference", "inference-2"}
    assert serve.inference_ready() == 200
    os.kill(pids["inference-2"], signal.SIGKILL)

    def back() -> bool:
        child = serve.info().get("children", {}).get("inference-2", {})
        return child.get("pid") not in (None, pids["inference-2"]) and bool(child.get("ready"))

    wait_until(back, 30, "the second worker restarted")
    new = serve.child_pids()
    assert new["inference"] == pids["inference"] and new["registry"] == pids["registry"]
    assert serve.inference_ready() == 200
    assert serve.proc is not None
    serve.proc.send_signal(signal.SIGTERM)
    assert serve.proc.wait(30) == 0
    assert all(process_gone(pid) for pid in new.values())
