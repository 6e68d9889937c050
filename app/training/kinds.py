"""The kinds of job the runner knows: what runs in the pool for each, and what a client may ask.

To add a kind (the ONNX twin build adds "compile"):
1. write a module-level `run(job_id: str, home: str) -> None` that calls
   `app.training.worker.run_job(job_id, home, body)` with a `body(store, job, ctx) -> Outcome`
   reporting through `ctx.step(...)`;
2. add a `JobKind` below. Leave `parse_request` None for jobs only the registry itself starts
   (through `JobRunner.submit(kind, spec, model=...)`), so `POST /jobs` refuses that kind;
3. the kind must be one the `jobs.kind` CHECK of the schema allows ('train', 'compile',
   'evaluate').
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.store import Store
from app.training import evaluate, train, twin_build
from app.training.evaluate import EvaluateRequest, validate_evaluate
from app.training.spec import TrainRequest, validate_train
from app.validation import validate

Worker = Callable[[str, str], None]
RequestParser = Callable[[Store, dict[str, Any]], tuple[dict[str, Any], str | None]]


@dataclass(frozen=True)
class JobKind:
    name: str
    worker: Worker  # module level: the spawn pool imports it by name in a fresh process
    parse_request: RequestParser | None = None  # (store, JSON body) -> (spec, model name)
    creates_version: bool = False  # on success, the runner calls hooks.on_version_ready


def _parse_train(store: Store, data: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    return validate_train(store, validate(TrainRequest, data))


def _parse_evaluate(store: Store, data: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    return validate_evaluate(store, validate(EvaluateRequest, data))


KINDS: dict[str, JobKind] = {
    "train": JobKind("train", train.run, _parse_train, creates_version=True),
    "compile": JobKind("compile", twin_build.run),  # started by hooks.on_version_ready only
    "evaluate": JobKind("evaluate", evaluate.run, _parse_evaluate),
}
