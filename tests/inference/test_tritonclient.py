"""A v2 client nobody here wrote: tritonclient's HTTP client against a real server."""

from __future__ import annotations

import numpy as np
import pytest

from tests.inference.conftest import LiveServer
from tests.models import iris_model, iris_rows

httpclient = pytest.importorskip("tritonclient.http")


@pytest.fixture
def triton(live: LiveServer):  # type: ignore[no-untyped-def]
    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{live.port}")
    yield client
    client.close()


def test_live_ready_and_metadata(triton) -> None:  # type: ignore[no-untyped-def]
    assert triton.is_server_live()
    assert triton.is_server_ready()
    assert triton.is_model_ready("iris")
    assert triton.is_model_ready("iris", "1")
    assert not triton.is_model_ready("ghost")
    assert triton.get_server_metadata()["name"] == "modeldepot"
    meta = triton.get_model_metadata("iris")
    assert meta["inputs"] == [{"name": "input", "datatype": "FP64", "shape": [-1, 4]}]
    assert [o["name"] for o in meta["outputs"]] == ["predict", "predict_proba"]


@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("dtype", ["FP32", "FP64"])
def test_infer(triton, binary: bool, dtype: str) -> None:  # type: ignore[no-untyped-def]
    rows = iris_rows(5).astype(np.float32 if dtype == "FP32" else np.float64)
    inp = httpclient.InferInput("input", list(rows.shape), dtype)
    inp.set_data_from_numpy(rows, binary_data=binary)
    outputs = [httpclient.InferRequestedOutput("predict", binary_data=binary),
               httpclient.InferRequestedOutput("predict_proba", binary_data=binary)]
    result = triton.infer("iris", [inp], outputs=outputs, request_id="abc", model_version="1")
    reference = iris_model()
    assert result.as_numpy("predict").tolist() == reference.predict(rows).tolist()
    np.testing.assert_allclose(result.as_numpy("predict_proba"), reference.predict_proba(rows))
    response = result.get_response()
    assert response["id"] == "abc" and response["model_version"] == "1"


def test_infer_error_is_raised_with_the_message(triton) -> None:  # type: ignore[no-untyped-def]
    from tritonclient.utils import InferenceServerException

    inp = httpclient.InferInput("input", [1, 3], "FP64")
    inp.set_data_from_numpy(np.zeros((1, 3)), binary_data=False)
    with pytest.raises(InferenceServerException, match="4 features"):
        triton.infer("iris", [inp])
