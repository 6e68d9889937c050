"""Turn client values into the matrix a model takes, checked against its signature.

Every check names the problem in a sentence a client can act on (row, feature, limit). The
checks run in numpy where they can: a request of a thousand rows must not cost a Python loop per
value on the success path; the slow search for the first offending value runs only on failure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.errors import Unprocessable
from app.formats.arrays import all_finite


class InputError(Unprocessable):
    """The payload does not fit the model: 422 on /v1, 400 on /v2 (each spec's status)."""

    code = "invalid_input"


_NUMPY_DTYPES = {"float64": np.float64, "float32": np.float32, "int64": np.int64,
                 "int32": np.int32, "bool": np.bool_, "str": np.object_}


@dataclass(frozen=True)
class InputSpec:
    """What one model version accepts, precomputed once per loaded version."""

    n_features: int | None
    feature_names: tuple[str, ...] | None
    dtype: np.dtype[Any]
    max_rows: int

    @classmethod
    def from_signature(cls, signature: Any, max_rows: int) -> InputSpec:
        if signature is None:
            return cls(None, None, np.dtype(np.float64), max_rows)
        names = tuple(signature.feature_names) if signature.feature_names else None
        dtype = np.dtype(_NUMPY_DTYPES.get(signature.input_dtype, np.float64))
        return cls(signature.n_features, names, dtype, max_rows)

    @property
    def takes_strings(self) -> bool:
        return self.dtype.kind == "O"

    def describe(self) -> str:
        if self.feature_names:
            more = ", ..." if len(self.feature_names) > 8 else ""
            shown = ", ".join(self.feature_names[:8]) + more
            return f"{len(self.feature_names)} features ({shown})"
        if self.n_features:
            return f"{self.n_features} features"
        return "the model's features"

    def check_row_count(self, count: int, what: str) -> None:
        if count == 0:
            raise InputError(f"{what} has no rows; send at least one.")
        if count > self.max_rows:
            raise InputError(
                f"{what} has {count} rows; this server takes at most {self.max_rows} per request "
                "(setting max_batch_rows). Split the request."
            )


def matrix_from_rows(rows: Any, spec: InputSpec, what: str) -> np.ndarray:
    """A list of rows, each a list of values, as the model's input matrix."""
    if not isinstance(rows, list):
        raise InputError(f"{what} must be a list of rows.")
    spec.check_row_count(len(rows), what)
    arr = _as_array(rows, spec, what)
    if arr.ndim == 1 and spec.n_features == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2:
        raise InputError(
            f"{what} must be a list of rows, each a list of {spec.describe()}"
            + ("; wrap a single row in another list." if arr.ndim == 1 else ".")
        )
    check_width(arr, spec, what)
    return check_values(arr, spec, what)


def matrix_from_records(records: list[Any], spec: InputSpec, what: str) -> np.ndarray:
    """A list of objects keyed by feature name, as the model's input matrix."""
    spec.check_row_count(len(records), what)
    names = _require_names(spec, what)
    try:
        rows = [[record[name] for name in names] for record in records]
    except (KeyError, TypeError):
        rows = None
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise InputError(f"Row {index} of {what} is not an object of feature values.")
        if rows is None or len(record) != len(names):
            missing = [n for n in names if n not in record]
            extra = [k for k in record if k not in set(names)]
            if missing:
                raise InputError(f"Row {index} of {what} lacks feature(s): {_listed(missing)}.")
            if extra:
                raise InputError(
                    f"Row {index} of {what} has unknown feature(s): {_listed(extra)}. "
                    f"The model takes {spec.describe()}."
                )
    arr = _as_array(rows, spec, what)
    if arr.ndim != 2:
        raise InputError(f"Each feature value in {what} must be a single value, not a list.")
    return check_values(arr, spec, what)


def matrix_from_columns(columns: Any, data: Any, spec: InputSpec, what: str) -> np.ndarray:
    """Named columns with row-major data (MLflow's `dataframe_split`), reordered to the model's."""
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise InputError(f"{what}.columns must be a list of feature names.")
    if len(set(columns)) != len(columns):
        raise InputError(f"{what}.columns names a feature twice.")
    table = InputSpec(len(columns), None, spec.dtype, spec.max_rows)
    return reorder(matrix_from_rows(data, table, f"{what}.data"), columns, spec, what)


def matrix_from_column_dict(columns: dict[str, Any], spec: InputSpec, what: str) -> np.ndarray:
    """`{"feature": [values...], ...}`: one list per feature, all the same length."""
    names = list(columns)
    lengths = {len(v) if isinstance(v, list) else -1 for v in columns.values()}
    if -1 in lengths or len(lengths) != 1:
        raise InputError(f"{what} must map each feature name to a list of values, all one length.")
    spec.check_row_count(lengths.pop(), what)
    arr = _as_array(list(columns.values()), spec, what)
    if arr.ndim != 2:
        raise InputError(f"{what} must map each feature name to a flat list of values.")
    arr = check_values(np.ascontiguousarray(arr.T), spec, what)
    return reorder(arr, names, spec, what)


def reorder(arr: np.ndarray, columns: Sequence[str], spec: InputSpec, what: str) -> np.ndarray:
    """Columns named by the client, put in the model's order (values already checked)."""
    names = spec.feature_names
    if names is None:
        check_width(arr, spec, what)
        return arr
    if tuple(columns) == names:  # the usual case: the client sent the model's order
        return arr
    position = {c: i for i, c in enumerate(columns)}
    missing = [n for n in names if n not in position]
    if missing:
        raise InputError(f"{what} lacks feature(s): {_listed(missing)}.")
    if len(position) != len(names):
        known = set(names)
        extra = [c for c in columns if c not in known]
        raise InputError(f"{what} has unknown feature(s): {_listed(extra)}. "
                         f"The model takes {spec.describe()}.")
    return np.ascontiguousarray(arr[:, [position[n] for n in names]])


def check_width(arr: np.ndarray, spec: InputSpec, what: str) -> None:
    if spec.n_features is not None and arr.shape[1] != spec.n_features:
        raise InputError(
            f"Each row of {what} must have {spec.describe()}; got {arr.shape[1]} value(s)."
        )


def _as_array(values: Any, spec: InputSpec, what: str) -> np.ndarray:
    try:
        arr = np.asarray(values)
    except (ValueError, TypeError):
        raise InputError(
            f"{what} is not a rectangular table: its rows differ in length or mix lists and "
            "values."
        ) from None
    if arr.dtype.kind == "U" and not spec.takes_strings:
        # numpy turned every value into text because one was: keep each as sent, so the error
        # names the cell that is not a number rather than the first one.
        arr = np.array(values, dtype=object)
    return arr


def check_values(arr: np.ndarray, spec: InputSpec, what: str) -> np.ndarray:
    """Numbers only (strings only for a string model), finite, cast to the model's dtype."""
    if spec.takes_strings:
        if arr.dtype.kind != "U":
            raise InputError(f"{what} must hold only strings for this model.")
        return arr.astype(object)
    kind = arr.dtype.kind
    if kind == "b" and spec.dtype.kind != "b":
        raise InputError(f"{what} holds true/false values; this model takes numbers.")
    if kind not in "iufb":
        raise InputError(_first_bad_value(arr, spec, what))
    if spec.dtype.kind in "iu" and kind == "f" and not np.array_equal(arr, np.trunc(arr)):
        raise InputError(f"{what} holds fractions; this model takes whole numbers.")
    try:
        if arr.dtype == spec.dtype:
            out = arr
        else:
            with np.errstate(over="ignore", invalid="ignore"):  # overflow shows as inf below
                out = arr.astype(spec.dtype)
    except (OverflowError, ValueError):
        raise InputError(f"{what} holds numbers out of the model's range.") from None
    if out.dtype.kind == "f" and not all_finite(out):
        position = int(np.flatnonzero(~np.isfinite(out.reshape(-1)))[0])
        raise InputError(f"{_cell(arr, spec, what, position)} is not finite (NaN, infinite, or "
                         f"beyond the range of {out.dtype.name}).")
    return out


def _cell(arr: np.ndarray, spec: InputSpec, what: str, position: int) -> str:
    """`Row r, feature c ('name') of what` for the flat `position` of a (rows, features) array."""
    width = arr.shape[-1] if arr.ndim >= 2 and arr.shape[-1] else 1
    row, col = divmod(position, width)
    name = f" ({spec.feature_names[col]!r})" if spec.feature_names and arr.ndim >= 2 and \
        col < len(spec.feature_names) else ""
    return f"Row {row}, feature {col}{name} of {what}"


def _first_bad_value(arr: np.ndarray, spec: InputSpec, what: str) -> str:
    flat = arr.reshape(-1)
    for position, value in enumerate(flat.tolist()):
        if isinstance(value, bool) or not isinstance(value, int | float):
            reason = "not a number"
        elif isinstance(value, int) and not -(2**63) <= value < 2**64:
            reason = "too large"
        elif isinstance(value, float) and not math.isfinite(value):
            reason = "not finite"
        else:
            continue
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        return f"{_cell(arr, spec, what, position)} is {shown}: {reason}."
    return f"{what} must hold only numbers."


def _require_names(spec: InputSpec, what: str) -> tuple[str, ...]:
    if not spec.feature_names:
        raise InputError(
            f"{what} names features, but this model's signature has no feature names; send each "
            f"row as a list of {spec.describe()} in order."
        )
    return spec.feature_names


def _listed(names: Sequence[str]) -> str:
    shown = [repr(n)[:60] for n in names[:5]]
    return ", ".join(shown) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
