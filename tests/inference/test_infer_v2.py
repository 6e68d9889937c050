"""POST /v2/models/{name}[/versions/{version}]/infer: tensors, outputs, ids, and refusals."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from app.store import Store
from tests.inference.conftest import IRIS_NAMES, ROW, AppClient, add_version, regressor, string_iris
from tests.models import iris_model, iris_rows

ROWS = iris_rows(4)


def tensor(
    data: Any, shape: list[int], datatype: str = "FP64", name: str = "input"
) -> dict[str, Any]:
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}


def infer(client: AppClient, body: dict[str, Any], model: str = "iris", version: str | None = None
          ) -> Any:
    path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"
    return client.post(path, json=body)


def v2_error(response: Any, status: int = 400) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"], body
    return str(body["error"])


def outputs(response: Any) -> dict[str, dict[str, Any]]:
    assert response.status_code == 200, response.text
    return {o["name"]: o for o in response.json()["outputs"]}


@pytest.mark.parametrize("datatype", ["FP32", "FP64"])
@pytest.mark.parametrize("nested", [False, True])
def test_float_tensors_flat_or_nested(client: AppClient, datatype: str, nested: bool) -> None:
    data = ROWS.tolist() if nested else ROWS.reshape(-1).tolist()
    r = infer(client, {"inputs": [tensor(data, [4, 4], datatype)]})
    out = outputs(r)
    expected = iris_model().predict(ROWS.astype(np.float32 if datatype == "FP32" else np.float64))
    assert out["predict"] == {"name": "predict", "datatype": "INT64", "shape": [4],
                              "data": expected.tolist()}
    assert out["predict_proba"]["shape"] == [4, 3]
    assert out["predict_proba"]["datatype"] == "FP64"
    body = r.json()
    assert body["model_name"] == "iris" and body["model_version"] == "1"
    assert "id" not in body


@pytest.mark.parametrize("datatype", ["INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16",
                                      "UINT32", "UINT64", "BOOL"])
def test_integer_and_bool_tensors(client: AppClient, datatype: str) -> None:
    rows = [[5, 3, 1, 0], [6, 3, 5, 2]] if datatype != "BOOL" else [[True, False, True, True]] * 2
    r = infer(client, {"inputs": [tensor(rows, [2, 4], datatype)]})
    expected = iris_model().predict(np.array(rows, dtype=np.float64)).tolist()
    assert outputs(r)["predict"]["data"] == expected


def test_id_is_echoed_and_outputs_can_be_chosen(client: AppClient) -> None:
    body = {"id": "req-42", "inputs": [tensor(ROW, [1, 4])], "outputs": [{"name": "predict_proba"}]}
    r = infer(client, body)
    assert r.json()["id"] == "req-42"
    out = outputs(r)
    assert list(out) == ["predict_proba"]
    np.testing.assert_allclose(out["predict_proba"]["data"],
                               iris_model().predict_proba([ROW]).reshape(-1))
    assert list(outputs(infer(client, {"inputs": [tensor(ROW, [1, 4])],
                                       "outputs": [{"name": "predict"}]}))) == ["predict"]


def test_one_input_per_feature(client: AppClient) -> None:
    inputs = [tensor(ROWS[:, i].tolist(), [4], "FP64", name) for i, name in enumerate(IRIS_NAMES)]
    r = infer(client, {"inputs": list(reversed(inputs))}, model="named")
    assert outputs(r)["predict"]["data"] == iris_model(C=0.5).predict(ROWS).tolist()


def test_string_labels_are_bytes_and_regression_is_fp64(client: AppClient, iris_store: Store,
                                                        tmp_path: Path) -> None:
    add_version(iris_store, "species", string_iris(), tmp_path)
    out = outputs(infer(client, {"inputs": [tensor(ROW, [1, 4])]}, model="species"))
    assert out["predict"]["datatype"] == "BYTES"
    assert out["predict"]["data"] == ["setosa"]
    assert client.get("/v2/models/species").json()["outputs"][0]["datatype"] == "BYTES"
    add_version(iris_store, "reg", regressor(), tmp_path)
    out = outputs(infer(client, {"inputs": [tensor([0.1, 0.2, 0.3], [1, 3])]}, model="reg"))
    assert out["predict"]["datatype"] == "FP64"
    assert list(out) == ["predict"]


def test_versions_in_the_path(client: AppClient, iris_store: Store, tmp_path: Path) -> None:
    add_version(iris_store, "iris", iris_model(C=0.01), tmp_path, alias="canary")
    for ref, version in (("1", "1"), ("latest", "2"), ("canary", "2")):
        r = infer(client, {"inputs": [tensor(ROW, [1, 4])]}, version=ref)
        assert r.json()["model_version"] == version


def test_binary_tensor_extension(client: AppClient) -> None:
    header = orjson.dumps({"inputs": [{"name": "input", "shape": [4, 4], "datatype": "FP32",
                                       "parameters": {"binary_data_size": 64}}],
                           "outputs": [{"name": "predict", "parameters": {"binary_data": True}}]})
    body = header + ROWS.astype("<f4").tobytes()
    r = client.post("/v2/models/iris/infer", content=body, headers={
        "inference-header-content-length": str(len(header)),
        "content-type": "application/octet-stream"})
    assert r.status_code == 200, r.text
    n = int(r.headers["inference-header-content-length"])
    meta = orjson.loads(r.content[:n])
    assert meta["outputs"][0]["parameters"] == {"binary_data_size": 32}
    got = np.frombuffer(r.content[n:], dtype="<i8")
    assert got.tolist() == iris_model().predict(ROWS.astype(np.float32)).tolist()


def test_binary_bytes_output(client: AppClient, iris_store: Store, tmp_path: Path) -> None:
    add_version(iris_store, "species", string_iris(), tmp_path)
    body = {"inputs": [tensor(ROW, [1, 4])], "parameters": {"binary_data_output": True},
            "outputs": [{"name": "predict"}]}
    r = infer(client, body, model="species")
    n = int(r.headers["inference-header-content-length"])
    raw = r.content[n:]
    (length,) = struct.unpack("<I", raw[:4])
    assert raw[4:4 + length] == b"setosa"


@pytest.mark.parametrize(("body", "words"), [
    ({"inputs": [tensor(ROW[:3], [1, 3])]}, "4 features"),
    ({"inputs": [tensor(ROW, [2, 4])]}, "needs 8 values"),
    ({"inputs": [tensor([[1, 2], [3]], [2, 2])]}, "ragged"),
    ({"inputs": [tensor(ROW, [1, 4], "FP16")]}, "FP16"),
    ({"inputs": [tensor(ROW, [1, 4], "BYTES")]}, "BYTES"),
    ({"inputs": [tensor(ROW, [1, 4], "COMPLEX")]}, "datatype"),
    ({"inputs": [tensor([1.5, 2, 3, 4], [1, 4], "INT64")]}, "whole numbers"),
    ({"inputs": [tensor([300, 2, 3, 4], [1, 4], "UINT8")]}, "range"),
    ({"inputs": [tensor([-1, 2, 3, 4], [1, 4], "UINT32")]}, "range"),
    ({"inputs": [tensor([1, 0, 1, 1], [1, 4], "BOOL")]}, "true/false"),
    ({"inputs": [tensor(["a", 2, 3, 4], [1, 4])]}, "numbers"),
    ({"inputs": [tensor([None, 2, 3, 4], [1, 4])]}, "numbers"),
    ({"inputs": [tensor([1e39, 2, 3, 4], [1, 4], "FP32")]}, "finite"),
    ({"inputs": [tensor(ROW, [1, 2, 2])]}, "shape"),
    ({"inputs": [tensor(ROW, [-1, 4])]}, "shape"),
    ({"inputs": [tensor(ROW, [4])]}, "shape [rows, 4]"),
    ({"inputs": [tensor([], [0, 4])]}, "no rows"),
    ({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64"}]}, "needs data"),
    ({"inputs": [tensor(ROW, [1, 4]) | {"extra": 1}]}, "unknown field"),
    ({"inputs": []}, "non-empty"),
    ({}, "non-empty"),
    ({"inputs": [tensor(ROW, [1, 4])], "outputs": [{"name": "logits"}]}, "Unknown output"),
    ({"inputs": [tensor(ROW, [1, 4])], "id": 42}, "id must be a string"),
    ({"inputs": [tensor(ROW, [1, 4])], "colour": 1}, "Unknown field"),
    ({"inputs": [tensor([1.0], [1], name=n) for n in ("a", "b")]}, "no feature names"),
])
def test_bad_requests_are_400_with_a_message(client: AppClient, body: dict[str, Any],
                                             words: str) -> None:
    assert words in v2_error(infer(client, body))


def test_a_number_beyond_float64_names_its_cell(client: AppClient) -> None:
    body = (b'{"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP64", '
            b'"data": [5.1, 3.5, 1.4, 0.2, 5.1, -1e999, 1.4, 0.2]}]}')
    r = client.post("/v2/models/iris/infer", content=body,
                    headers={"content-type": "application/json"})
    message = v2_error(r)
    assert message.startswith("Row 1, feature 1 of input 'input' is not finite"), message


@pytest.mark.parametrize("shape", [[4, 2**62], [1, 2**63], [2**32, 2**32]])
def test_a_shape_whose_product_overflows_int64_is_refused(client: AppClient,
                                                          shape: list[int]) -> None:
    """numpy's int64 product of [4, 2**62] wraps to 0, which empty data would have matched."""
    r = infer(client, {"inputs": [tensor([], shape)]})
    assert r.status_code == 400, r.text
    assert "error" in r.json()


def test_feature_inputs_must_match_names(client: AppClient) -> None:
    inputs = [tensor([1.0], [1], name=n) for n in IRIS_NAMES[:3] + ["colour"]]
    assert "exactly the features" in v2_error(infer(client, {"inputs": inputs}, model="named"))


def test_other_errors_keep_their_status(client: AppClient) -> None:
    v2_error(infer(client, {"inputs": [tensor(ROW, [1, 4])]}, model="ghost"), 404)
    v2_error(client.post("/v2/models/iris/infer", content=b"{",
                         headers={"content-type": "application/json"}), 400)
    v2_error(client.post("/v2/models/iris/infer", content=b"{}",
                         headers={"content-type": "text/plain"}), 415)
    v2_error(client.post("/v2/models/iris/infer", content=b"{}",
                         headers={"inference-header-content-length": "99"}), 400)
