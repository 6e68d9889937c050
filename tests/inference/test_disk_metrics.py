"""/metrics shows the data dir's free space and the disk guard's threshold, read at scrape."""

from __future__ import annotations

import shutil

from app.config import Settings
from tests.inference.conftest import AUTH, AppClient


def metric(text: str, name: str) -> float:
    line = next(line for line in text.splitlines() if line.startswith(name + " "))
    return float(line.split()[1])


def test_free_space_and_the_guard_are_metrics(client: AppClient, settings: Settings) -> None:
    text = client.get("/metrics", headers=AUTH).text
    usage = shutil.disk_usage(settings.home)
    assert metric(text, "modeldepot_disk_total_bytes") == usage.total
    assert 0 < metric(text, "modeldepot_disk_free_bytes") <= usage.total
    assert metric(text, "modeldepot_disk_min_free_bytes") == min(1 << 30, usage.total * 5 // 100)
