"""Uploads far larger than the multipart parser's buffer stream through intact, in any chunking."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import joblib
import numpy as np
from flask.testing import FlaskClient
from sklearn.neighbors import KNeighborsClassifier
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from tests.registry.conftest import AUTH


def knn_file(path: Path, megabytes: int) -> Path:
    """A real estimator that keeps its training data, so its file is `megabytes` large."""
    rows = megabytes * (1 << 20) // (50 * 8)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((rows, 50))
    joblib.dump(KNeighborsClassifier(n_neighbors=1).fit(X, X[:, 0] > 0), path)
    return path


def test_a_multi_megabyte_upload_is_stored_whole(client: FlaskClient, tmp_path: Path) -> None:
    model = knn_file(tmp_path / "knn.joblib", 12)
    # Encoded in memory: the test client would spool this body to a temp file it never closes.
    with model.open("rb") as f:
        fields = {"file": FileStorage(f, "knn.joblib"), "metadata": '{"trust": true}'}
        boundary, body = encode_multipart(fields)
    response = client.post("/api/v1/models/knn/versions", input_stream=io.BytesIO(body),
                           headers=AUTH, content_type=f"multipart/form-data; boundary={boundary}")
    assert response.status_code == 201, response.json
    assert response.json["size"] == model.stat().st_size
    assert response.json["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    with client.get("/api/v1/models/knn/versions/1/artifact") as artifact:
        assert hashlib.sha256(artifact.data).hexdigest() == response.json["sha256"]


def test_a_part_header_that_never_ends_is_413_not_memory(client: FlaskClient) -> None:
    boundary = "b0undary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"m.skops\"\r\nX-Filler: ").encode() + b"a" * (16 << 20)
    response = client.post("/api/v1/models/m/versions", input_stream=io.BytesIO(body),
                           headers=AUTH,
                           content_type=f"multipart/form-data; boundary={boundary}")
    assert response.status_code in (400, 413)
    assert response.json["error"]["message"]
    assert client.get("/api/v1/models/m").status_code == 404


def test_a_dataset_up_to_its_own_limit_reaches_the_app_on_waitress(tmp_path: Path) -> None:
    """Waitress's cap follows the larger of the model and dataset limits: with small model
    uploads, a big CSV is still the app's to judge (201 here, a JSON 413 past its limit)."""
    from app.client import Client
    from tests.conftest import TOKEN
    from tests.live import free_port, start_registry, stop

    csv = tmp_path / "big.csv"
    row = ",".join(["1.5"] * 40) + ",1\n"
    with csv.open("w") as f:
        f.write(",".join(f"f{i}" for i in range(40)) + ",label\n")
        f.write(row * ((66 << 20) // len(row)))  # past 1 KB + waitress's 64 MB of slack
    port = free_port()
    proc = start_registry(tmp_path / "home", port, MODELDEPOT_MAX_UPLOAD_BYTES="1000",
                          MODELDEPOT_MAX_DATASET_BYTES=str(100 << 20))
    try:
        dataset = Client(f"http://127.0.0.1:{port}", TOKEN, timeout=120).upload_dataset(csv)
        assert dataset["size"] == csv.stat().st_size
    finally:
        stop(proc)
