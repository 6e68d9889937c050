"""What the structure checks share: the error they raise and how they read an estimator."""

from __future__ import annotations

from typing import Any, NoReturn

from app.errors import InvalidModelFile


def fail(where: str, detail: str) -> NoReturn:
    """InvalidModelFile naming where in the model (e.g. `estimators_[3].tree_`) and what."""
    shown = where.lstrip(".") or "the model"
    raise InvalidModelFile(
        f"{shown}: {detail}. scikit-learn's compiled code would use this without bounds "
        "checks (reading or writing outside the model's memory), so the model is refused."
    )


def vars_of(obj: Any) -> dict[str, Any] | None:
    """The instance dict, without calling anything the object defines."""
    try:
        found = object.__getattribute__(obj, "__dict__")
    except AttributeError:
        return None
    return found if type(found) is dict else None


def feature_count(estimator: Any) -> int | None:
    """n_features_in_ as an instance attribute (never a property), if it is a plain int."""
    value = (vars_of(estimator) or {}).get("n_features_in_")
    if isinstance(value, bool) or not isinstance(value, int):
        import numpy as np

        return int(value) if isinstance(value, np.integer) else None
    return value


def shape_of(value: Any) -> str:
    shape = getattr(value, "shape", None)
    if isinstance(shape, tuple):
        return "x".join(str(n) for n in shape) if len(shape) != 1 else str(shape[0])
    return type(value).__name__


def array(value: Any, where: str, what: str, *, ndim: int, kind: str = "iu") -> Any:
    """`value` as a numpy array of `ndim` dimensions and a dtype kind in `kind`, else fail."""
    import numpy as np

    if not isinstance(value, np.ndarray) or value.ndim != ndim or value.dtype.kind not in kind:
        fail(where, f"{what} is not a {ndim}-D {_KINDS.get(kind, kind)} array "
             f"(found {type(value).__name__} {shape_of(value)})")
    return value


_KINDS = {"iu": "integer", "iub": "integer", "f": "float", "O": "object"}
