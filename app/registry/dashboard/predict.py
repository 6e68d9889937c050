"""Try a prediction: a form built from the version's signature, or raw JSON, handed to the
inference server (inference.py) and its answer shown as a table; its error message as it is."""

from __future__ import annotations

import json
import math
from typing import Any
from urllib.parse import quote

from flask import Blueprint, request
from werkzeug.wrappers import Response

from app.errors import ModelDepotError
from app.registry.context import registry
from app.registry.dashboard import inference
from app.registry.dashboard.access import cookie_token
from app.registry.dashboard.web import form_text, page
from app.store.names import check_name, parse_ref
from app.store.records import VersionRecord

bp = Blueprint("predict", __name__)
NUMERIC = ("float64", "float32", "int64", "int32")
MAX_RAW = 1 << 20


def feature_names(record: VersionRecord | None) -> list[str]:
    signature = (record.signature if record else None) or {}
    if signature.get("feature_names"):
        return [str(n) for n in signature["feature_names"]]
    return [f"x{i}" for i in range(int(signature.get("n_features") or 0))]


def _target() -> tuple[str, str, VersionRecord | None, list[str]]:
    """The chosen model and version from the query, and the version the form is built from."""
    name = request.args.get("model", "").strip()
    version = request.args.get("version", "").strip()
    if not name:
        return "", "", None, []
    check_name(name)
    if version:
        parse_ref(version)
    record = registry().store.resolve(name, version or None)
    return name, version, record, feature_names(record)


def _render(status: int = 200, **context: Any) -> Response:
    name, version, record, features = _target()
    models, _ = registry().store.list_models(limit=1000)
    example = {"instances": [[0] * len(features)]} if features else {"instances": [[0]]}
    context.setdefault("raw", json.dumps(example))
    return page("predict.html", status, models=models, model=name, version=version,
                record=record, features=features, nav="predict", **context)


@bp.get("/predict")
def form() -> Response:
    return _render()


def _value(text: str, dtype: str) -> Any:
    # Numbers go as numbers; anything else goes as typed, for the server to judge and explain.
    if dtype in NUMERIC:
        try:
            number = float(text) if any(c in text.lower() for c in ".en") else int(text)
        except ValueError:
            return text
        return number if math.isfinite(number) else text
    return text


@bp.post("/predict")
def run() -> Response:
    name, version, record, features = _target()
    if not name:
        return _render(400, error="Choose a model first.")
    mode = request.form.get("mode", "fields")
    values = {f: request.form.get(f"f_{i}", "") for i, f in enumerate(features)}
    raw = request.form.get("raw", "")
    try:
        if mode == "json":
            body = form_text("raw", required=True, label="the JSON request",
                             max_length=MAX_RAW).encode()
        else:
            dtype = str(((record.signature if record else None) or {}).get("input_dtype")
                        or "float64")
            row = [_value(values[f].strip(), dtype) for f in features]
            payload: dict[str, Any] = {"instances": [row]}
            if request.form.get("proba") == "on":
                payload["proba"] = True
            body = json.dumps(payload).encode()
        path = f"/v1/models/{quote(name)}" + (f"/versions/{quote(version)}" if version else "")
        settings = registry().settings
        answer = inference.call(settings.host, settings.inference_port, "POST", path + "/predict",
                                body, token=cookie_token(request))
    except ModelDepotError as exc:
        return _render(exc.status, error=exc.message, mode=mode, values=values, raw=raw)
    if not answer.ok:
        return _render(answer.status, error=answer.message, mode=mode, values=values, raw=raw)
    return _render(result=answer.body, result_json=json.dumps(answer.body, indent=2),
                   mode=mode, values=values, raw=raw or json.dumps(json.loads(body)))
