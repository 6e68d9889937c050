"""The cache's memory budget counts resident memory (app/inference/memory.py), not file sizes.

A model whose loaded form is far larger than its file (here: a real skops model loaded through
the real loader, holding 48 MB more once loaded, as an unpacked forest does) must be charged
what it holds, and evicting it must bring the process's RSS back under the budget.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.config import Settings
from app.formats.predictor import Predictor, load_predictor
from app.inference.app import create_app
from app.inference.loaded import load_version
from app.procmem import resident_bytes
from app.store import Store
from tests.inference.conftest import ROW, AppClient, add_version, wait_for
from tests.models import iris_model

BALLAST = 48 << 20


def heavy_loader(path: Path, fmt: str, *, signature: Any = None) -> Predictor:
    """The real loader; the predictor then holds BALLAST bytes more, every page touched."""
    predictor = load_predictor(path, fmt, signature=signature)
    predictor.ballast = np.ones(BALLAST, dtype=np.uint8)  # type: ignore[attr-defined]
    return predictor


def test_a_load_is_charged_the_resident_memory_it_added(store: Store, tmp_path: Path) -> None:
    add_version(store, "heavy", iris_model(), tmp_path)
    record = store.get_version("heavy", 1)
    prepared = load_version(store, record, heavy_loader)
    assert record.size < 1 << 20
    assert prepared.memory >= BALLAST  # what it holds, not its file's few kilobytes
    light = load_version(store, record, load_predictor)
    assert record.size <= light.memory < BALLAST


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RSS read from /proc")
def test_eviction_keeps_resident_memory_under_the_budget(settings: Settings, store: Store,
                                                         tmp_path: Path) -> None:
    for name in ("a", "b", "c", "d"):
        add_version(store, name, iris_model(), tmp_path, alias="production")
    budget_mb = 120  # two heavy models fit, not three
    app = create_app(settings.replace(cache_memory_mb=budget_mb), store, loader=heavy_loader)
    with AppClient(app) as client:
        for name in ("a", "b", "c", "d", "a"):
            r = client.post(f"/v1/models/{name}/predict", json={"instances": [ROW]})
            assert r.status_code == 200, r.text

        def fits() -> bool:
            use = client.get("/v1/resources").json()
            base = use["resident_bytes_before_models"]
            return bool(base) and use["loaded_models"] <= 2 and \
                (resident_bytes() or 0) - base <= budget_mb << 20

        wait_for(fits, 30)  # eviction by RSS finishes in the background
        use = client.get("/v1/resources").json()
        assert use["loaded_bytes"] <= budget_mb << 20
        assert use["loaded_bytes"] >= use["loaded_models"] * BALLAST
