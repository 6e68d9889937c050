"""End to end: a real skops file of a decision tree whose child index points far outside its
node table. Loaded by scikit-learn alone it kills the process on its first prediction; sent
to a real registry over HTTP it is refused with a 4xx naming the check, and the inference
side's loader refuses it too."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import skops.io
from sklearn.datasets import load_iris
from sklearn.tree import DecisionTreeClassifier

from app.errors import InvalidModelFile
from app.formats.predictor import load_predictor
from tests.conftest import TOKEN
from tests.formats.corrupt import set_node, with_tree
from tests.live import free_port, start_registry, stop

FAR = 2**40  # node 2**40 lies terabytes past the table: reading it faults, it does not wrap


@pytest.fixture(scope="module")
def hostile_skops(tmp_path_factory: pytest.TempPathFactory) -> Path:
    X, y = load_iris(return_X_y=True)
    tree = DecisionTreeClassifier(random_state=0).fit(X, y)
    path = tmp_path_factory.mktemp("hostile") / "tree.skops"
    path.write_bytes(skops.io.dumps(with_tree(tree, set_node("left_child", 0, FAR))))
    return path


def test_sklearn_alone_dies_with_sigsegv_predicting_with_the_file(hostile_skops: Path) -> None:
    """The threat is real: without check_structures, the first prediction faults."""
    program = (
        "import sys, numpy, skops.io\n"
        "path = sys.argv[1]\n"
        "model = skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))\n"
        "model.predict(numpy.zeros((1, 4)))\n"
    )
    done = subprocess.run([sys.executable, "-c", program, str(hostile_skops)],
                          capture_output=True, timeout=120)
    assert done.returncode == -signal.SIGSEGV, (done.returncode, done.stderr[-2000:])


def test_the_inference_loader_refuses_the_file(hostile_skops: Path) -> None:
    with pytest.raises(InvalidModelFile, match=f"tree_: node 0's left child {FAR} is outside"):
        load_predictor(hostile_skops, "skops")


def test_a_real_registry_refuses_the_upload_naming_the_check(
    hostile_skops: Path, tmp_path: Path
) -> None:
    port = free_port()
    proc = start_registry(tmp_path / "home", port)
    try:
        base = f"http://127.0.0.1:{port}/api/v1"
        with hostile_skops.open("rb") as f:
            response = httpx.post(f"{base}/models/tree/versions",
                                  files={"file": ("tree.skops", f)},
                                  headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "invalid_model_file"
        assert f"tree_: node 0's left child {FAR} is outside the" in error["message"]
        assert httpx.get(f"{base}/models/tree", timeout=10).status_code == 404
        assert proc.poll() is None
    finally:
        stop(proc)
