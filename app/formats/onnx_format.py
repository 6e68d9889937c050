"""ONNX files: self-contained graphs only, checked by onnx, served by onnxruntime on the CPU.

An ONNX tensor may keep its data in a file named inside the model (data_location EXTERNAL);
onnxruntime would open that path relative to the model, so such models are refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.errors import InvalidModelFile, UnsafeModel
from app.formats.signature import Signature

LABEL_OUTPUTS = ("label", "output_label")
PROBA_OUTPUTS = ("probabilities", "output_probability")


def parse(source: Path | bytes) -> Any:
    import onnx
    from google.protobuf.message import DecodeError

    try:
        data = source if isinstance(source, bytes) else source.read_bytes()
        model = onnx.load_model_from_string(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise InvalidModelFile("The ONNX file is damaged or not an ONNX model.") from exc
    if model.ir_version <= 0 or not model.HasField("graph"):
        raise InvalidModelFile("The file is not an ONNX model: it has no graph.")
    return model


def _tensors(graph: Any) -> Any:
    """Every tensor stored in a graph, its nodes' attributes and their subgraphs."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        yield from _attribute_tensors(node.attribute)


def _attribute_tensors(attributes: Any) -> Any:
    for attr in attributes:
        if attr.HasField("t"):
            yield attr.t
        yield from attr.tensors
        if attr.HasField("sparse_tensor"):
            yield attr.sparse_tensor.values
            yield attr.sparse_tensor.indices
        for sparse in attr.sparse_tensors:
            yield sparse.values
            yield sparse.indices
        if attr.HasField("g"):
            yield from _tensors(attr.g)
        for sub in attr.graphs:
            yield from _tensors(sub)


def check_self_contained(model: Any) -> None:
    import onnx

    tensors = list(_tensors(model.graph))
    for function in model.functions:
        for node in function.node:
            tensors.extend(_attribute_tensors(node.attribute))
    for tensor in tensors:
        if tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data):
            raise UnsafeModel(
                "ONNX models must be self-contained: this one keeps tensor data in external "
                "files. Save it with all tensors inside the model (onnx.save with "
                "save_as_external_data=False)."
            )


_DTYPES = {1: "float32", 11: "float64", 7: "int64", 6: "int32", 9: "bool", 8: "str"}


def onnx_signature(model: Any) -> Signature:
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise InvalidModelFile(
            f"The ONNX model has {len(inputs)} inputs; ModelDepot serves models with one input "
            "tensor of shape [rows, features]."
        )
    tensor_type = inputs[0].type.tensor_type
    dtype = _DTYPES.get(tensor_type.elem_type)
    if dtype is None:
        raise InvalidModelFile("The ONNX model's input has an element type ModelDepot cannot feed.")
    dims = tensor_type.shape.dim
    n_features = None
    if len(dims) == 2 and dims[1].HasField("dim_value") and dims[1].dim_value > 0:
        n_features = int(dims[1].dim_value)
    names = [o.name for o in graph.output]
    outputs = ["predict"]
    if proba_output(names) is not None:
        outputs.append("predict_proba")
    classes = _classes(model)
    if "predict_proba" in outputs or classes is not None:
        task: str | None = "classification"
    elif len(names) == 1 and graph.output[0].type.tensor_type.elem_type in (1, 11):
        task = "regression"
    else:
        task = None
    return Signature(n_features, None, dtype, tuple(outputs), classes, task)


def label_output(names: list[str]) -> str:
    return next((n for n in names if n in LABEL_OUTPUTS), names[0])


def proba_output(names: list[str]) -> str | None:
    named = next((n for n in names if n in PROBA_OUTPUTS), None)
    if named is not None:
        return named
    return names[1] if len(names) == 2 else None


def _classes(model: Any) -> tuple[int | str, ...] | None:
    for node in model.graph.node:
        for attr in node.attribute:
            if attr.name in ("classlabels_int64s", "classlabels_ints") and attr.ints:
                return tuple(int(v) for v in attr.ints)
            if attr.name == "classlabels_strings" and attr.strings:
                return tuple(v.decode("utf-8", "replace") for v in attr.strings)
    return None


def inspect_onnx(source: Path | bytes) -> tuple[Signature, dict[str, str]]:
    import onnx

    model = parse(source)
    check_self_contained(model)
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError) as exc:
        raise InvalidModelFile(
            "The ONNX model fails onnx.checker: it is malformed or uses an unknown operator."
        ) from exc
    if not model.graph.output:
        raise InvalidModelFile("The ONNX model has no outputs.")
    env: dict[str, str] = {}
    if model.producer_name:
        env["onnx-producer"] = f"{model.producer_name} {model.producer_version}".strip()
    return onnx_signature(model), env


def cpu_session(data: bytes, what: str) -> Any:
    """An onnxruntime session on the CPU with one thread: the server runs several models and
    requests side by side, and a single row takes microseconds, less than waking a second
    thread would. InvalidModelFile names `what` when onnxruntime refuses the graph."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(data, sess_options=options,
                                    providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise InvalidModelFile(f"onnxruntime cannot run {what}.") from exc
