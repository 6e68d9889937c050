"""ONNX files built by hand with onnx.helper: signature, predictions, external data refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from app.errors import InvalidModelFile, Unprocessable, UnsafeModel
from app.formats import Signature, inspect_file, load_predictor

RNG = np.random.default_rng(0)
W = RNG.normal(size=(4, 3)).astype(np.float32)
B = RNG.normal(size=3).astype(np.float32)


def _model(nodes: list[Any], outputs: list[Any], initializers: list[Any],
           n_inputs: int = 1, ml: bool = False) -> onnx.ModelProto:
    inputs = [helper.make_tensor_value_info(f"X{i}" if i else "X", TensorProto.FLOAT, [None, 4])
              for i in range(n_inputs)]
    graph = helper.make_graph(nodes, "tiny", inputs, outputs, initializers)
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid("ai.onnx.ml", 1)] if ml else [])
    model = helper.make_model(graph, opset_imports=opsets, producer_name="handmade",
                              producer_version="1")
    model.ir_version = 8
    return model


def classifier(zipmap: bool = False, weights: Any = None) -> onnx.ModelProto:
    nodes = [
        helper.make_node("MatMul", ["X", "W"], ["xw"]),
        helper.make_node("Add", ["xw", "B"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0),
    ]
    outputs = [helper.make_tensor_value_info("label", TensorProto.INT64, [None])]
    if zipmap:
        nodes.append(helper.make_node("ZipMap", ["probabilities"], ["output_probability"],
                                      domain="ai.onnx.ml", classlabels_int64s=[0, 1, 2]))
        map_type = helper.make_map_type_proto(
            TensorProto.INT64, helper.make_tensor_type_proto(TensorProto.FLOAT, []))
        outputs.append(helper.make_value_info(
            "output_probability", helper.make_sequence_type_proto(map_type)))
    else:
        outputs.append(helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 3]))
    w = weights if weights is not None else numpy_helper.from_array(W, "W")
    return _model(nodes, outputs, [w, numpy_helper.from_array(B, "B")], ml=zipmap)


def regressor() -> onnx.ModelProto:
    nodes = [helper.make_node("MatMul", ["X", "W"], ["variable"])]
    outputs = [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, 1])]
    return _model(nodes, outputs, [numpy_helper.from_array(W[:, :1], "W")])


def _expected(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    logits = X.astype(np.float32) @ W + B
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    proba = exp / exp.sum(axis=1, keepdims=True)
    return proba.argmax(axis=1), proba


def save(model: onnx.ModelProto, path: Path) -> Path:
    path.write_bytes(model.SerializeToString())
    return path


@pytest.mark.parametrize("zipmap", [False, True])
def test_classifier(zipmap: bool, rows: np.ndarray, tmp_path: Path) -> None:
    path = save(classifier(zipmap), tmp_path / "clf.onnx")
    result = inspect_file(path, trust=False, filename="clf.onnx")
    assert (result.format, result.format_detail, result.requires_trust) == ("onnx", "onnx", False)
    sig = result.signature
    assert sig is not None
    assert (sig.n_features, sig.input_dtype, sig.outputs, sig.task) == (
        4, "float32", ("predict", "predict_proba"), "classification")
    assert sig.classes == ((0, 1, 2) if zipmap else None)
    assert result.environment == {"onnx-producer": "handmade 1"}
    predictor = load_predictor(path, "onnx", signature=sig)
    labels, proba = _expected(rows)
    np.testing.assert_array_equal(predictor.predict(rows), labels)
    got = predictor.predict_proba(rows)
    assert got.shape == (len(rows), 3) and got.dtype == np.float64
    np.testing.assert_allclose(got, proba, rtol=1e-5)


def test_regressor(rows: np.ndarray, tmp_path: Path) -> None:
    path = save(regressor(), tmp_path / "reg.onnx")
    result = inspect_file(path, trust=False)
    assert result.signature is not None
    assert (result.signature.task, result.signature.outputs) == ("regression", ("predict",))
    predictor = load_predictor(path, "onnx")
    assert not predictor.has_proba
    expected = (rows.astype(np.float32) @ W[:, :1]).ravel()
    np.testing.assert_allclose(predictor.predict(rows), expected, rtol=1e-5)


def test_external_data_refused(tmp_path: Path) -> None:
    tensor = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[4, 3])
    tensor.data_location = TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "weights.bin"
    (tmp_path / "weights.bin").write_bytes(W.tobytes())  # present, and still refused
    path = save(classifier(weights=tensor), tmp_path / "ext.onnx")
    with pytest.raises(UnsafeModel, match="self-contained"):
        inspect_file(path, trust=True)
    with pytest.raises(UnsafeModel, match="self-contained"):
        load_predictor(path, "onnx")


def test_external_data_in_constant_node_refused(tmp_path: Path) -> None:
    tensor = TensorProto(name="c", data_type=TensorProto.FLOAT, dims=[3])
    tensor.data_location = TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "/etc/passwd"
    model = classifier()
    model.graph.node.append(helper.make_node("Constant", [], ["unused"], value=tensor))
    path = save(model, tmp_path / "const.onnx")
    with pytest.raises(UnsafeModel):
        inspect_file(path, trust=False)


def test_checker_failure(tmp_path: Path) -> None:
    model = classifier()
    model.graph.node.append(helper.make_node("NoSuchOperator", ["label"], ["other"]))
    path = save(model, tmp_path / "bad.onnx")
    with pytest.raises(InvalidModelFile, match="checker"):
        inspect_file(path, trust=False)


def test_truncated_onnx(tmp_path: Path) -> None:
    data = classifier().SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidModelFile):
        inspect_file(path, trust=False)


def test_two_inputs_refused(tmp_path: Path) -> None:
    nodes = [helper.make_node("Add", ["X", "X1"], ["variable"])]
    outputs = [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, 4])]
    path = save(_model(nodes, outputs, [], n_inputs=2), tmp_path / "two.onnx")
    with pytest.raises(InvalidModelFile, match="2 inputs"):
        inspect_file(path, trust=False)


def test_declared_signature_must_match_graph(tmp_path: Path) -> None:
    path = save(classifier(), tmp_path / "clf.onnx")
    declared = Signature.from_dict({"feature_names": ["a", "b", "c"]})
    with pytest.raises(Unprocessable, match=r"3 features.*takes 4"):
        inspect_file(path, trust=False, declared_signature=declared)
    declared = Signature.from_dict({"feature_names": ["a", "b", "c", "d"]})
    result = inspect_file(path, trust=False, declared_signature=declared)
    assert result.signature is not None
    assert result.signature.feature_names == ("a", "b", "c", "d")
    assert result.signature.input_dtype == "float32"  # the graph fixes the dtype
