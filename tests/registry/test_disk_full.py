"""A really full disk: the data dir on a small tmpfs volume, filled by uploads until the kernel
says ENOSPC. The failing upload answers 507 and leaves no temp file and no partial dataset, the
registry keeps answering, predictions go on, the guard then refuses before writing, and
`modeldepot doctor` finds nothing wrong.

Mounting needs root (or CAP_SYS_ADMIN): where the mount is refused the test is skipped and says
so; nothing else here is faked.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.client import Client, ClientError
from tests.conftest import TOKEN
from tests.live import free_port, server_env, start_inference, start_registry, stop
from tests.models import iris_model, iris_rows, write_skops
from tests.registry.jobdata import classification_csv

VOLUME = "12m"


@pytest.fixture
def small_volume(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "volume"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={VOLUME},mode=0700", "tmpfs",
                           str(mount_point)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a {VOLUME} tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True)


def csv_file(folder: Path, n: int) -> Path:
    path = folder / f"data-{n}.csv"
    path.write_bytes(classification_csv(rows=40_000, seed=n))  # ~2 MB, distinct per n
    return path


def doctor(home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app", "doctor", "--home", str(home)],
                          env=server_env(home), capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_a_full_disk_refuses_cleanly_and_keeps_serving(small_volume: Path,
                                                        tmp_path: Path) -> None:
    home = small_volume / "home"
    registry_port, inference_port = free_port(), free_port()
    registry = start_registry(home, registry_port, MODELDEPOT_MIN_FREE_DISK="0",
                              MODELDEPOT_TWINS="false")
    inference = None
    try:
        client = Client(f"http://127.0.0.1:{registry_port}", TOKEN)
        client.upload("iris", write_skops(tmp_path / "iris.skops"), {})
        stored, refused = 0, None
        for n in range(20):
            try:
                client.upload_dataset(csv_file(tmp_path, n))
                stored += 1
            except ClientError as exc:
                refused = exc
                break
        assert refused is not None, "the volume never filled"
        assert refused.status == 507 and "disk is full" in str(refused)
        assert stored >= 1
        assert not [p.name for p in (home / "tmp").iterdir() if p.name.startswith("upload-")]
        assert len(client.request("GET", "/api/v1/datasets")["datasets"]) == stored
        assert client.request("GET", "/api/v1/health")["status"] == "ok"

        inference = start_inference(home, inference_port)
        answer = Client(f"http://127.0.0.1:{inference_port}", TOKEN).request(
            "POST", "/v1/models/iris/predict", json_body={"instances": iris_rows().tolist()})
        assert answer["predictions"] == iris_model().predict(iris_rows()).tolist()

        # The guard now answers first: nothing is streamed onto the full disk.
        stop(registry)
        registry = start_registry(home, registry_port, MODELDEPOT_MIN_FREE_DISK="1M",
                                  MODELDEPOT_TWINS="false")
        with pytest.raises(ClientError) as guard:
            client.upload("iris", tmp_path / "iris.skops", {})
        assert guard.value.status == 507 and "min_free_disk" in str(guard.value)
    finally:
        stop(registry)
        if inference is not None:
            stop(inference)
    report = doctor(home)
    assert report.returncode == 0, report.stdout + report.stderr
    assert report.stdout.rstrip().endswith("healthy")
