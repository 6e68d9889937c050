"""Pickle versions an earlier release stored (no skops copy) are converted once, in the sandbox."""

from __future__ import annotations

from pathlib import Path

from app.config import Settings
from app.inference.app import create_app as create_inference
from app.registry.legacy import convert_legacy_pickles
from app.store import NewVersion, Store
from app.store.blobs import file_sha256
from tests.inference.conftest import AppClient
from tests.models import iris_rows, write_joblib
from tests.registry.conftest import assert_serves_iris


def _store_as_an_earlier_release(store: Store, tmp_path: Path) -> int:
    path = write_joblib(tmp_path / "m.joblib")
    temp, sha, size = store.blobs.receive(iter([path.read_bytes()]))
    record = store.add_version("iris", temp, sha, size,
                               NewVersion(format="pickle", format_detail="joblib",
                                          imported_globals=("sklearn.linear_model.X",)))
    assert record.served_sha256 is None
    return record.version


def test_unconverted_pickle_is_converted_then_served(
    settings: Settings, store: Store, tmp_path: Path
) -> None:
    version = _store_as_an_earlier_release(store, tmp_path)
    assert [r.version for r in store.unconverted_pickles()] == [version]
    with AppClient(create_inference(settings, store)) as inference:
        refused = inference.post("/v1/models/iris/predict",
                                 json={"instances": iris_rows().tolist()})
        assert refused.status_code == 503
        assert "never open pickles" in refused.json()["error"]["message"]

    assert convert_legacy_pickles(store, settings) == 1
    record = store.get_version("iris", version)
    assert record.served_format == "skops" and record.served_sha256 is not None
    assert file_sha256(store.blobs.path(record.served_sha256)) == record.served_sha256
    assert store.unconverted_pickles() == []
    assert convert_legacy_pickles(store, settings) == 0  # once
    assert list(settings.paths.tmp.iterdir()) == []

    assert_serves_iris(settings, store)


def test_deleting_the_version_frees_its_copy(
    settings: Settings, store: Store, tmp_path: Path
) -> None:
    version = _store_as_an_earlier_release(store, tmp_path)
    convert_legacy_pickles(store, settings)
    served = store.get_version("iris", version).served_sha256
    assert served is not None and store.blobs.exists(served)
    store.delete_version("iris", str(version), force=True)
    assert not store.blobs.exists(served)
