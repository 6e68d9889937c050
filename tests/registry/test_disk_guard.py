"""The disk guard: with less free space than min_free_disk, uploads, datasets and training jobs
are refused with 507 before anything is written, and predictions, status and metrics go on."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest

from app.config import Settings
from app.diskspace import DEFAULT_FLOOR, check_room, disk_use, required_free
from app.errors import InsufficientStorage
from tests.models import write_skops
from tests.registry.conftest import AUTH, error_code, registry_app, upload
from tests.registry.jobdata import classification_csv, train_body


def beyond_the_volume(path: Path) -> str:
    """A min_free_disk larger than the whole volume: no write can leave that much free."""
    return f"{shutil.disk_usage(path).total // 1024 + 1}K"


def assert_names_setting_and_free_space(response: object) -> None:
    assert response.status_code == 507  # type: ignore[attr-defined]
    assert error_code(response) == "low_disk_space"
    message = response.get_json()["error"]["message"]  # type: ignore[attr-defined]
    assert "min_free_disk" in message and " free on the data dir's disk" in message


def test_default_is_one_gib_or_five_percent_whichever_is_smaller() -> None:
    assert required_free(100 << 30, None) == DEFAULT_FLOOR
    assert required_free(10 << 30, None) == (10 << 30) // 20
    assert required_free(1000, "10%") == 100
    assert required_free(1 << 40, "2G") == 2 << 30
    assert required_free(1 << 40, "0") == 0


def test_check_room_counts_what_the_write_brings(tmp_path: Path) -> None:
    free = shutil.disk_usage(tmp_path).free
    check_room(tmp_path, "1K", 0, "a write")
    with pytest.raises(InsufficientStorage, match="needs about"):
        check_room(tmp_path, "1K", free, "a write")
    check_room(tmp_path, "0", free * 2, "a write")  # 0: no guard


def test_uploads_datasets_and_training_are_refused_before_writing(
        settings: Settings, tmp_path: Path) -> None:
    model = write_skops(tmp_path / "iris.skops")
    with registry_app(settings.replace(twins=False)) as app:
        client = app.test_client()
        dataset = client.post("/api/v1/datasets", headers=AUTH,
                              data={"file": (io.BytesIO(classification_csv()), "c.csv")},
                              content_type="multipart/form-data").get_json()["id"]
        assert upload(client, "iris", model).status_code == 201
    full = settings.replace(twins=False, min_free_disk=beyond_the_volume(tmp_path))
    with registry_app(full) as app:
        client = app.test_client()
        revision = app.extensions["modeldepot"].store.revision()
        assert_names_setting_and_free_space(upload(client, "iris", model))
        assert_names_setting_and_free_space(client.post(
            "/api/v1/datasets", headers=AUTH, content_type="multipart/form-data",
            data={"file": (io.BytesIO(classification_csv(seed=3)), "d.csv")}))
        assert_names_setting_and_free_space(
            client.post("/api/v1/jobs", json=train_body(dataset), headers=AUTH))
        store = app.extensions["modeldepot"].store
        assert store.revision() == revision
        # No training job was queued (version 1's own compile job, for its load cache, may be).
        assert [j.kind for j in store.jobs.list_jobs()[0] if j.kind != "compile"] == []
        assert not list(store.paths.tmp.iterdir())
        assert [r.version for r in store.list_versions("iris")[0]] == [1]
        # Reading goes on: the model, its file, the status page.
        with client.get("/api/v1/models/iris/versions/1/artifact") as artifact:
            assert artifact.status_code == 200 and artifact.data == model.read_bytes()
        page = client.get("/status", headers=AUTH)
        assert page.status_code == 200 and b"min_free_disk" in page.data


def test_status_reports_free_total_and_the_guard(tmp_path: Path) -> None:
    disk = disk_use(tmp_path, "1M")
    usage = shutil.disk_usage(tmp_path)
    assert disk["min_free_bytes"] == 1 << 20
    assert disk["total_bytes"] == usage.total
    assert disk["free_bytes"] is not None and disk["free_bytes"] > 0
