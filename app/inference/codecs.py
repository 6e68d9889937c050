"""Request bodies to input matrices and predictions to response bodies, for /v1 and /v2.

/v1 is the simple JSON of docs/api.md (`instances`, `dataframe_split`, `dataframe_records`,
`inputs`, `proba`); /v2 is the Open Inference Protocol's tensor JSON, with Triton's binary tensor
extension (a JSON header of `Inference-Header-Content-Length` bytes followed by raw tensors), which
tritonclient uses by default.
"""

from __future__ import annotations

import math
import struct
from typing import Any, NamedTuple, TypeGuard

import numpy as np
import orjson

from app.inference.inputs import (
    InputError,
    InputSpec,
    check_values,
    check_width,
    matrix_from_column_dict,
    matrix_from_columns,
    matrix_from_records,
    matrix_from_rows,
)

V1_SHAPES = ("instances", "dataframe_split", "dataframe_records", "inputs")
V1_FIELDS = frozenset(V1_SHAPES) | {"proba", "params"}
V2_REQUEST_FIELDS = frozenset({"id", "parameters", "inputs", "outputs"})
V2_INPUT_FIELDS = frozenset({"name", "shape", "datatype", "data", "parameters"})
V2_DTYPES: dict[str, np.dtype[Any]] = {
    name: np.dtype(t) for name, t in {
        "BOOL": np.bool_, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32,
        "INT64": np.int64, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
        "UINT64": np.uint64, "FP32": np.float32, "FP64": np.float64,
    }.items()
}
_V2_NAMES = {dtype: name for name, dtype in V2_DTYPES.items()}  # encode_v2, per output
_KIND_OK = {"b": "b", "i": "iu", "u": "iu", "f": "iuf"}


# -- /v1 -------------------------------------------------------------------------------------

def decode_v1(body: Any, spec: InputSpec) -> tuple[np.ndarray, bool]:
    """The input matrix and whether probabilities were asked for."""
    if not isinstance(body, dict):
        raise InputError("The body must be a JSON object such as {\"instances\": [[...], ...]}.")
    unknown = [k for k in body if k not in V1_FIELDS]
    if unknown:
        raise InputError(f"Unknown field(s): {', '.join(repr(k)[:40] for k in unknown[:5])}. "
                         f"Send one of {', '.join(V1_SHAPES)}, and optionally proba.",
                         code="unknown_field")
    shapes = [k for k in V1_SHAPES if k in body]
    if len(shapes) != 1:
        raise InputError(f"Send exactly one of {', '.join(V1_SHAPES)}; got "
                         f"{', '.join(shapes) if shapes else 'none'}.")
    proba = body.get("proba", False)
    if not isinstance(proba, bool):
        raise InputError("proba must be true or false.")
    shape = shapes[0]
    value = body[shape]
    if shape == "dataframe_split":
        if not isinstance(value, dict) or not {"columns", "data"} <= set(value) or \
                set(value) - {"columns", "data", "index"}:
            raise InputError("dataframe_split must be an object with columns and data "
                             "(and optionally index).")
        return matrix_from_columns(value["columns"], value["data"], spec, shape), proba
    if shape == "inputs" and isinstance(value, dict):
        return matrix_from_column_dict(value, spec, shape), proba
    if not isinstance(value, list):
        raise InputError(f"{shape} must be a list of rows.")
    if shape == "dataframe_records" or (value and isinstance(value[0], dict)):
        return matrix_from_records(value, spec, shape), proba
    return matrix_from_rows(value, spec, shape), proba


def encode_v1(model: str, version: int, predictions: np.ndarray,
              probabilities: np.ndarray | None) -> bytes:
    body: dict[str, Any] = {"model": model, "version": version, "predictions": _plain(predictions)}
    if probabilities is not None:
        body["probabilities"] = _plain(probabilities)
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)


# -- /v2 -------------------------------------------------------------------------------------

class V2Request(NamedTuple):
    # A NamedTuple rather than a frozen dataclass: built once per request, and a frozen
    # dataclass's __init__ costs a microsecond on the prediction path.
    matrix: np.ndarray
    outputs: tuple[str, ...]
    binary_outputs: frozenset[str]
    id: str | None


def decode_v2(header: Any, binary: bytes, spec: InputSpec, available: tuple[str, ...]) -> V2Request:
    if not isinstance(header, dict):
        raise InputError("The body must be a JSON object with an inputs list.")
    if not V2_REQUEST_FIELDS.issuperset(header):
        unknown = [k for k in header if k not in V2_REQUEST_FIELDS]
        shown = ", ".join(repr(k)[:40] for k in unknown)
        raise InputError(f"Unknown field(s) in the request: {shown}.")
    request_id = header.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InputError("id must be a string.")
    inputs = header.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InputError("inputs must be a non-empty list of tensors.")
    tensors = _decode_tensors(inputs, binary, spec)
    matrix = tensors[0][1] if len(tensors) == 1 else _stack_columns(tensors, spec)
    outputs, binary_outputs = _requested_outputs(header, available)
    return V2Request(matrix, outputs, binary_outputs, request_id)


def _decode_tensors(
    inputs: list[Any], binary: bytes, spec: InputSpec
) -> list[tuple[str, np.ndarray]]:
    tensors: list[tuple[str, np.ndarray]] = []
    offset = 0
    single = len(inputs) == 1
    for index, tensor in enumerate(inputs):
        if not isinstance(tensor, dict):
            raise InputError(f"inputs[{index}] must be an object.")
        name = tensor.get("name")
        what = f"input {name!r}" if isinstance(name, str) else f"inputs[{index}]"
        if not isinstance(name, str):
            raise InputError(f"{what} needs a name.")
        if not V2_INPUT_FIELDS.issuperset(tensor):
            raise InputError(f"{what} has unknown field(s): "
                             f"{', '.join(sorted(set(tensor) - V2_INPUT_FIELDS))[:120]}.")
        shape = tensor.get("shape")
        if not _is_shape(shape):
            raise InputError(f"{what} needs a shape of one or two non-negative integers, "
                             "such as [rows, features].")
        datatype = tensor.get("datatype")
        dtype = V2_DTYPES.get(datatype) if isinstance(datatype, str) else None
        if dtype is None and not (datatype == "BYTES" and spec.takes_strings):
            raise InputError(f"{what} has datatype {str(datatype)[:20]!r}; this model takes "
                             f"{', '.join(V2_DTYPES)}" + (" (FP16 has no JSON form)."
                                                          if datatype == "FP16" else "."))
        spec.check_row_count(shape[0], what)
        params = tensor.get("parameters") or {}
        size = params.get("binary_data_size") if isinstance(params, dict) else None
        if size is not None:
            if type(size) is not int or size < 0 or offset + size > len(binary) or dtype is None:
                raise InputError(f"{what} has a binary_data_size that does not match the body.")
            arr = np.frombuffer(binary, dtype=dtype.newbyteorder("<"), count=size // dtype.itemsize,
                                offset=offset)
            offset += size
        elif "data" in tensor and isinstance(tensor["data"], list):
            try:
                arr = np.asarray(tensor["data"])
            except (ValueError, TypeError):
                raise InputError(f"{what}: data is ragged (nested lists of different lengths).") \
                    from None
        else:
            raise InputError(f"{what} needs data (a flat or nested list).")
        count = math.prod(shape)  # exact: numpy's int64 product wraps (2**64 -> 0)
        if arr.size != count:
            raise InputError(f"{what} has shape {shape}, which needs {count} values; data has "
                             f"{arr.size}.")
        if dtype is not None and arr.dtype.kind not in _KIND_OK[dtype.kind] and arr.size:
            kind = {"b": "true/false", "i": "whole numbers", "u": "whole numbers",
                    "f": "numbers"}[dtype.kind]
            raise InputError(f"{what} is {datatype} but its data holds values other than {kind}.")
        arr = arr.reshape(shape)
        if datatype == "BOOL" and spec.dtype.kind != "b":
            arr = arr.astype(np.uint8)  # an explicit BOOL tensor to a numeric model: 0 and 1
        elif dtype is not None and arr.dtype != dtype:
            if dtype.kind in "iu" and arr.size and (arr.min() < np.iinfo(dtype).min or
                                                    arr.max() > np.iinfo(dtype).max):
                raise InputError(f"{what} holds values outside the range of {datatype}.")
            with np.errstate(over="ignore", invalid="ignore"):  # inf is refused below
                arr = arr.astype(dtype)
        if single:
            if arr.ndim == 1 and spec.n_features == 1:
                arr = arr.reshape(-1, 1)
            if arr.ndim != 2:
                raise InputError(f"{what} must have shape [rows, {spec.n_features or 'features'}].")
            check_width(arr, spec, what)
        elif arr.ndim == 2 and arr.size == len(arr):  # [rows, 1]
            arr = arr.reshape(-1)
        elif arr.ndim != 1:
            raise InputError(f"{what}: with one input per feature, each has shape [rows] or "
                             "[rows, 1].")
        tensors.append((name, check_values(arr, spec, what) if single else arr))
    if offset != len(binary):
        raise InputError("The binary part of the body does not match the inputs' binary_data_size.")
    return tensors


def _is_shape(shape: Any) -> TypeGuard[list[int]]:
    """One or two non-negative integers (unrolled: this runs for every request)."""
    if type(shape) is not list or not 1 <= len(shape) <= 2:
        return False
    first = shape[0]
    if type(first) is not int or first < 0:
        return False
    if len(shape) == 1:
        return True
    second = shape[1]
    return type(second) is int and second >= 0


def _stack_columns(tensors: list[tuple[str, np.ndarray]], spec: InputSpec) -> np.ndarray:
    """One input per feature (as MLServer's pandas codec sends): stack in the model's order."""
    names = [name for name, _ in tensors]
    if len({arr.shape[0] for _, arr in tensors}) != 1:
        raise InputError("Every input must have the same number of rows.")
    if spec.feature_names is None:
        raise InputError("This model's signature has no feature names, so send one input of "
                         f"shape [rows, {spec.n_features or 'features'}].")
    if len(names) != len(set(names)) or set(names) != set(spec.feature_names):
        raise InputError(f"With one input per feature, send exactly the features "
                         f"{', '.join(spec.feature_names)[:200]} once each.")
    by_name = dict(tensors)
    arr = np.column_stack([by_name[n] for n in spec.feature_names])
    return check_values(arr, spec, "inputs")


def _requested_outputs(header: dict[str, Any], available: tuple[str, ...]
                       ) -> tuple[tuple[str, ...], frozenset[str]]:
    params = header.get("parameters") or {}
    binary_all = isinstance(params, dict) and params.get("binary_data_output") is True
    requested = header.get("outputs")
    if requested is None:
        return available, frozenset(available if binary_all else ())
    if not isinstance(requested, list):
        raise InputError("outputs must be a list of {\"name\": ...} objects.")
    names: list[str] = []
    binary: set[str] = set()
    for item in requested:
        name = item.get("name") if isinstance(item, dict) else None
        if name not in available:
            raise InputError(f"Unknown output {str(name)[:60]!r}; this model gives "
                             f"{', '.join(available)}.")
        names.append(name)
        out_params = item.get("parameters") or {}
        if binary_all or (isinstance(out_params, dict) and out_params.get("binary_data") is True):
            binary.add(name)
    return tuple(dict.fromkeys(names)), frozenset(binary)


def v2_datatype(dtype: np.dtype[Any]) -> str:
    if dtype.kind in "OUS":
        return "BYTES"
    return _V2_NAMES.get(dtype) or ("FP64" if dtype.kind == "f" else "INT64")


def encode_v2(model: str, version: int, request: V2Request,
              results: dict[str, np.ndarray]) -> tuple[bytes, int | None]:
    """The response body, and the JSON header length when binary outputs follow it."""
    outputs: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for name in request.outputs:
        arr = results[name]
        entry: dict[str, Any] = {"name": name, "datatype": v2_datatype(arr.dtype),
                                 "shape": list(arr.shape)}
        if name in request.binary_outputs:
            raw = _binary(arr)
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            entry["data"] = _plain(arr.reshape(-1))
        outputs.append(entry)
    body: dict[str, Any] = {"model_name": model, "model_version": str(version)}
    if request.id is not None:
        body["id"] = request.id
    body["outputs"] = outputs
    header = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    if not chunks:
        return header, None
    return header + b"".join(chunks), len(header)


def _binary(arr: np.ndarray) -> bytes:
    if arr.dtype.kind in "OUS":
        parts = [str(v).encode() for v in arr.reshape(-1).tolist()]
        return b"".join(struct.pack("<I", len(p)) + p for p in parts)
    return np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()


def _plain(arr: np.ndarray) -> Any:
    """Numeric arrays go to orjson as they are (fast); labels of other types as Python lists."""
    if arr.dtype.kind in "biuf" and arr.flags.c_contiguous:
        return arr
    return arr.tolist()
