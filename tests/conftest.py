"""Fixtures shared by every test: a temporary data dir, settings, a store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.config import Settings
from app.store import Store

TOKEN = "test-token-" + "x" * 32


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", token=TOKEN)


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    s = Store(settings.paths)
    yield s
    s.close()
