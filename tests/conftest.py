"""Fixtures shared by every test: a temporary data dir, settings, a store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.config import Settings
from app.store import Store

TOKEN = "test-token-" + "x" * 32


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A plain `pytest` stays quick: tests marked `slow` (real-process kill loops, browsers,
    floods) run when a marker expression names them, as `.ci/run` does with
    `-m "slow or not slow"`, or when they are named on the command line."""
    if "slow" in (config.getoption("markexpr") or "") or any("::" in str(a) for a in config.args):
        return
    kept = [item for item in items if not item.get_closest_marker("slow")]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i.get_closest_marker("slow")])
        items[:] = kept


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", token=TOKEN)


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    s = Store(settings.paths)
    yield s
    s.close()
