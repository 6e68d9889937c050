"""What a model takes and gives: feature count and names, input dtype, outputs, classes, task."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from app.errors import Unprocessable

OUTPUTS = ("predict", "predict_proba")
TASKS = ("classification", "regression")
INPUT_DTYPES = ("float64", "float32", "int64", "int32", "bool", "str")
_FIELDS = ("n_features", "feature_names", "input_dtype", "outputs", "classes", "task")

# MLflow column types (mlflow/types/schema.py DataType) to numpy dtype names.
MLFLOW_TYPES = {
    "double": "float64", "float": "float32", "long": "int64", "integer": "int32",
    "boolean": "bool", "string": "str",
}

ClassLabel = int | float | str | bool


@dataclass(frozen=True)
class Signature:
    n_features: int | None
    feature_names: tuple[str, ...] | None
    input_dtype: str
    outputs: tuple[str, ...]
    classes: tuple[ClassLabel, ...] | None
    task: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_features": self.n_features,
            "feature_names": list(self.feature_names) if self.feature_names is not None else None,
            "input_dtype": self.input_dtype,
            "outputs": list(self.outputs),
            "classes": list(self.classes) if self.classes is not None else None,
            "task": self.task,
        }

    @classmethod
    def from_dict(cls, d: Any) -> Signature:
        """Build from `to_dict` output, or from MLflow's column specs (`{"inputs": [...]}`).

        Missing fields take defaults; anything malformed is Unprocessable with a message that
        names the field.
        """
        if isinstance(d, str):
            d = _json(d, "signature")
        if not isinstance(d, dict):
            raise Unprocessable("The signature must be a JSON object.")
        if "inputs" in d:
            return _from_mlflow(d)
        unknown = sorted(set(d) - set(_FIELDS))
        if unknown:
            raise Unprocessable(
                f"The signature has unknown fields: {', '.join(map(str, unknown))}. "
                f"Known fields: {', '.join(_FIELDS)}."
            )
        n_features = d.get("n_features")
        if n_features is not None and (type(n_features) is not int or n_features < 1):
            raise Unprocessable("signature.n_features must be a positive integer or null.")
        names = _names(d.get("feature_names"))
        if names is not None:
            if n_features is None:
                n_features = len(names)
            elif n_features != len(names):
                raise Unprocessable(
                    f"signature.n_features is {n_features} but signature.feature_names lists "
                    f"{len(names)} names."
                )
        input_dtype = d.get("input_dtype") or "float64"
        if input_dtype not in INPUT_DTYPES:
            raise Unprocessable(
                f"signature.input_dtype must be one of {', '.join(INPUT_DTYPES)}."
            )
        outputs = d.get("outputs")
        if outputs is None:
            outputs = ["predict"]
        if (
            not isinstance(outputs, list | tuple)
            or not outputs
            or any(o not in OUTPUTS for o in outputs)
        ):
            raise Unprocessable(
                "signature.outputs must be a non-empty list of 'predict' and 'predict_proba'."
            )
        task = d.get("task")
        if task is not None and task not in TASKS:
            raise Unprocessable("signature.task must be 'classification', 'regression' or null.")
        return cls(
            n_features=n_features,
            feature_names=names,
            input_dtype=input_dtype,
            outputs=tuple(o for o in OUTPUTS if o in outputs),
            classes=_classes(d.get("classes")),
            task=task,
        )


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise Unprocessable(f"The {what} is not valid JSON.") from exc


def _names(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if (
        not isinstance(value, list | tuple)
        or not value
        or not all(isinstance(n, str) and n for n in value)
    ):
        raise Unprocessable(
            "signature.feature_names must be a non-empty list of non-empty strings."
        )
    if len(set(value)) != len(value):
        raise Unprocessable("signature.feature_names has duplicate names.")
    return tuple(value)


def _classes(value: Any) -> tuple[ClassLabel, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list | tuple) or not all(
        isinstance(c, int | float | str | bool) for c in value
    ):
        raise Unprocessable("signature.classes must be a list of numbers, strings or booleans.")
    return tuple(value)


def _from_mlflow(d: dict[str, Any]) -> Signature:
    """MLflow's signature: `inputs` is a list (or its JSON string) of column or tensor specs."""
    inputs = d["inputs"]
    if isinstance(inputs, str):
        inputs = _json(inputs, "signature inputs")
    if not isinstance(inputs, list) or not inputs:
        raise Unprocessable("signature.inputs must be a non-empty list of column specs.")
    if not all(isinstance(spec, dict) for spec in inputs):
        raise Unprocessable("Each entry of signature.inputs must be an object.")
    if len(inputs) == 1 and inputs[0].get("type") == "tensor":
        return _from_tensor_spec(inputs[0])
    names: list[str] = []
    dtypes: set[str] = set()
    for spec in inputs:
        kind = spec.get("type")
        if kind not in MLFLOW_TYPES:
            raise Unprocessable(
                f"signature.inputs has a column of type {kind!r}; ModelDepot takes "
                f"{', '.join(MLFLOW_TYPES)}."
            )
        dtypes.add(MLFLOW_TYPES[kind])
        if "name" in spec:
            names.append(spec["name"])
    if names and len(names) != len(inputs):
        raise Unprocessable("Either every column in signature.inputs has a name or none has.")
    # Mixed numeric columns are fed to scikit-learn as one float64 matrix.
    input_dtype = dtypes.pop() if len(dtypes) == 1 else "float64"
    return Signature(
        n_features=len(inputs),
        feature_names=_names(names) if names else None,
        input_dtype=input_dtype,
        outputs=("predict",),
        classes=None,
        task=None,
    )


def _from_tensor_spec(spec: dict[str, Any]) -> Signature:
    tensor = spec.get("tensor-spec")
    if not isinstance(tensor, dict):
        raise Unprocessable("A tensor input in signature.inputs needs a 'tensor-spec' object.")
    dtype = tensor.get("dtype", "float64")
    shape = tensor.get("shape")
    if dtype not in INPUT_DTYPES:
        raise Unprocessable(f"signature.inputs has a tensor of dtype {dtype!r}.")
    n_features = None
    if isinstance(shape, list) and len(shape) == 2 and type(shape[1]) is int and shape[1] > 0:
        n_features = shape[1]
    return Signature(n_features, None, dtype, ("predict",), None, None)


def plain(value: Any) -> ClassLabel:
    """A numpy scalar (or Python value) as the JSON-plain Python value."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


def signature_from_estimator(estimator: Any) -> Signature:
    """What a fitted scikit-learn estimator exposes about its inputs and outputs."""
    from sklearn.base import is_classifier, is_regressor

    n = getattr(estimator, "n_features_in_", None)
    n_features = int(n) if n is not None else None
    raw_names = getattr(estimator, "feature_names_in_", None)
    names = tuple(str(x) for x in raw_names) if raw_names is not None else None
    raw_classes = getattr(estimator, "classes_", None)
    classes = None
    if raw_classes is not None and getattr(raw_classes, "ndim", 1) == 1:
        classes = tuple(plain(c) for c in raw_classes)
    outputs = ("predict", "predict_proba") if hasattr(estimator, "predict_proba") else ("predict",)
    if is_classifier(estimator) or classes is not None:
        task: str | None = "classification"
    elif is_regressor(estimator):
        task = "regression"
    else:
        task = None
    return Signature(n_features, names, "float64", outputs, classes, task)


def merge(
    declared: Signature | None,
    manifest: Signature | None,
    model: Signature | None,
    *,
    model_knows_dtype: bool = False,
) -> Signature | None:
    """Inputs (count, names, dtype) from the first of declared > manifest > model that has them;
    outputs, classes and task from the model itself, which alone knows what it can do.

    An ONNX graph fixes its input dtype (`model_knows_dtype`); scikit-learn casts what it gets.
    """
    inputs_from = next((s for s in (declared, manifest, model) if s is not None), None)
    if inputs_from is None:
        return None
    n_features = next(
        (s.n_features for s in (declared, manifest, model) if s is not None and s.n_features),
        None,
    )
    names = next(
        (s.feature_names for s in (declared, manifest, model) if s is not None and s.feature_names),
        None,
    )
    behaviour = model or inputs_from
    return Signature(
        n_features=n_features,
        feature_names=names,
        input_dtype=model.input_dtype if model and model_knows_dtype else inputs_from.input_dtype,
        outputs=behaviour.outputs,
        classes=behaviour.classes if behaviour.classes is not None else inputs_from.classes,
        task=behaviour.task if behaviour.task is not None else inputs_from.task,
    )


def check_agrees(given: Signature | None, model: Signature | None, source: str) -> None:
    """Refuse a declared (or manifest) signature that contradicts the model itself."""
    if given is None or model is None:
        return
    if given.n_features and model.n_features and given.n_features != model.n_features:
        raise Unprocessable(
            f"The {source} says the model takes {given.n_features} features, but the model "
            f"itself takes {model.n_features}."
        )
    if given.feature_names and model.feature_names and given.feature_names != model.feature_names:
        raise Unprocessable(
            f"The {source} names the features {', '.join(given.feature_names)}, but the model "
            f"was fitted on {', '.join(model.feature_names)}."
        )
