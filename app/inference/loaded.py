"""One model version made ready to serve: its file verified, loaded, warmed up, described.

`load_version` runs in a worker thread and touches nothing shared: the cache decides what to do
with the result (or the failure) on the event loop.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from app.errors import ModelDepotError, ServiceUnavailable
from app.inference.batching import MicroBatcher
from app.inference.codecs import v2_datatype
from app.inference.inputs import InputSpec
from app.inference.memory import measured
from app.inference.metrics import ModelMetrics
from app.store import Store, VersionRecord
from app.store.blobs import file_sha256

if TYPE_CHECKING:
    from app.formats.load_cache import CacheRecipe
    from app.formats.predictor import Predictor
    from app.formats.signature import Signature

log = logging.getLogger(__name__)

Loader = Callable[..., Any]
PLATFORMS = {"onnx": "onnx_onnxv1"}


class ModelUnavailable(ServiceUnavailable):
    """The version exists but cannot be served: not ready, corrupt, or failing to load."""

    code = "model_unavailable"


class CorruptModel(ModelUnavailable):
    code = "model_corrupt"


@dataclass(frozen=True)
class FileStamp:
    """Enough to tell whether a blob changed on disk since a failed attempt."""

    size: int
    mtime_ns: int
    inode: int

    @classmethod
    def of(cls, path: Path) -> FileStamp | None:
        try:
            st = path.stat()
        except OSError:
            return None
        return cls(st.st_size, st.st_mtime_ns, st.st_ino)


@dataclass(frozen=True)
class Failure:
    model: str
    version: int
    reason: str
    stamp: FileStamp | None

    def to_dict(self) -> dict[str, Any]:
        return {"version": str(self.version), "reason": self.reason}


@dataclass
class Prepared:
    """What the worker thread hands back: everything but the parts bound to the event loop."""

    record: VersionRecord
    predictor: Predictor
    signature: Signature | None
    seconds: float
    twin_key: str | None = None
    engine: str = "scikit-learn"
    # What the cache's budget counts: the resident memory the load added (app/inference/
    # memory.py), at least the size of the file that was loaded.
    memory: int = 0


@dataclass(eq=False)
class LoadedModel:
    name: str
    version: int
    record: VersionRecord
    signature: Any
    spec: InputSpec
    outputs: tuple[str, ...]
    platform: str
    memory: int
    batcher: MicroBatcher
    metrics: ModelMetrics
    last_used: float = field(default_factory=time.monotonic)
    twin_key: str | None = None  # the twin asked for when loaded (see twin_key below)
    engine: str = "scikit-learn"

    @property
    def has_proba(self) -> bool:
        return "predict_proba" in self.outputs

    def metadata(self) -> dict[str, Any]:
        """Open Inference Protocol model metadata (inputs and outputs from the signature)."""
        n_features = self.spec.n_features or -1
        inputs = [{"name": "input", "datatype": v2_datatype(self.spec.dtype),
                   "shape": [-1, n_features]}]
        outputs = [{"name": "predict", "datatype": self._predict_datatype(), "shape": [-1]}]
        if self.has_proba:
            classes = getattr(self.signature, "classes", None)
            outputs.append({"name": "predict_proba", "datatype": "FP64",
                            "shape": [-1, len(classes) if classes else -1]})
        return {"name": self.name, "versions": [str(self.version)], "platform": self.platform,
                "inputs": inputs, "outputs": outputs}

    def _predict_datatype(self) -> str:
        classes = getattr(self.signature, "classes", None)
        if classes:
            sample = np.asarray(list(classes))
            return v2_datatype(sample.dtype if sample.dtype.kind != "U" else np.dtype(object))
        return "FP64"


def platform_of(fmt: str) -> str:
    return PLATFORMS.get(fmt, f"sklearn_{fmt}")


def twin_key(record: VersionRecord, twins: bool) -> str | None:
    """The twin a version should be served through: its verified twin's digest, unless twins
    are off globally (setting) or for this version (tag twin=off). A change of this key is what
    makes the cache reload a version it already serves."""
    if twins and record.twin_status == "verified" and record.twin_sha256 and \
            record.twin_enabled and record.format != "onnx":
        return record.twin_sha256
    return None


def linear_key(record: VersionRecord) -> str | None:
    """The digest of the linear load cache a version may be served from (app/formats/linear.py),
    else None. With twin_key, what makes the cache reload a version it already serves: a version
    loaded before its arrays existed switches to them once they do."""
    recipe = record.load_cache_recipe
    if isinstance(recipe, dict) and recipe.get("form") == "linear":
        return record.load_cache_sha256
    return None


def load_version(store: Store, record: VersionRecord, loader: Loader, *,
                 twin: str | None = None) -> Prepared:
    """Verify, load and warm one version (blocking: run it in a worker thread), charged the
    resident memory it added (see _load_version)."""
    prepared, growth = measured(partial(_load_version, store, record, loader, twin=twin),
                                floor=0)
    prepared.memory = max(prepared.memory, growth)
    return prepared


def _load_version(store: Store, record: VersionRecord, loader: Loader, *,
                  twin: str | None = None) -> Prepared:
    """Verify, load and warm one version.

    With `twin` (the digest twin_key chose), the version is served through its ONNX twin; a twin
    that is damaged or fails to load or warm is logged and passed over for the model itself.
    Raises CorruptModel when the file is not the one the registry recorded, ModelUnavailable when
    it does not load or its warm-up predict fails.
    """
    started = time.perf_counter()
    path, expected, fmt = store.served_path(record)
    try:
        actual = file_sha256(path)
    except OSError:
        raise ModelUnavailable(
            f"Version {record.version} of {record.model!r} cannot be served: its file is missing."
        ) from None
    if actual != expected:
        raise CorruptModel(
            f"Version {record.version} of {record.model!r} is corrupt: its file's sha256 does not "
            "match the one recorded at upload. It is not served; run `modeldepot doctor`."
        )
    signature = _signature(record)
    linear = _load_linear(store, record, signature)
    if linear is not None:
        # scikit-learn's own answers, bit for bit, from numpy alone (app/formats/linear.py), so
        # the engine is "scikit-learn": before the twin, which is only close to them, needs
        # onnxruntime, and is no faster for a matrix product.
        return Prepared(record, linear, signature, time.perf_counter() - started, twin,
                        "scikit-learn", path.stat().st_size)
    twin_predictor, twin_size = _load_twin(store, record, signature, twin) if twin else (None, 0)
    if twin_predictor is not None:
        return Prepared(record, twin_predictor, signature, time.perf_counter() - started, twin,
                        "onnxruntime-twin", twin_size)
    try:
        predictor = _load_cached(store, record, signature) or loader(path, fmt,
                                                                     signature=signature)
    except ModelDepotError as exc:  # our own sentences: they name no path
        log.warning("loading %s version %d failed: %s", record.model, record.version, exc.message)
        raise ModelUnavailable(
            f"Version {record.version} of {record.model!r} cannot be served: {exc.message}"
        ) from None
    except Exception as exc:
        log.warning("loading %s version %d failed: %r", record.model, record.version, exc)
        raise ModelUnavailable(
            f"Version {record.version} of {record.model!r} failed to load "
            f"({type(exc).__name__}); the inference log has the details."
        ) from None
    signature = getattr(predictor, "signature", None) or signature
    warm_up(predictor, signature, record)
    engine = "onnxruntime" if record.format == "onnx" else "scikit-learn"
    return Prepared(record, predictor, signature, time.perf_counter() - started, twin, engine,
                    path.stat().st_size)


def _load_twin(store: Store, record: VersionRecord, signature: Any, key: str
               ) -> tuple[Any, int]:
    """The twin, checked against its digest, loaded and warmed, and its file's size; None if any
    of that fails."""
    from app.formats.twin import load_twin

    if signature is None:
        return None, 0
    try:
        data = store.blobs.path(key).read_bytes()
        if hashlib.sha256(data).hexdigest() != key:
            log.error("the twin of %s version %d does not match its sha256; serving the model "
                      "itself", record.model, record.version)
            return None, 0
        twin = load_twin(data, signature, record.twin_report)
        warm_up(twin, signature, record)
    except Exception as exc:
        log.warning("not serving %s version %d through its twin (%r); serving the model itself",
                    record.model, record.version, exc)
        return None, 0
    return twin, len(data)


def _load_linear(store: Store, record: VersionRecord, signature: Signature | None
                 ) -> Predictor | None:
    """The version from its linear load cache, warmed up; None (and the usual path) when
    _read_linear gives nothing or the warm-up fails (logged)."""
    linear = _read_linear(store, record, signature)
    if linear is None:
        return None
    try:
        warm_up(linear, signature, record)
    except ModelUnavailable:  # warm_up logged why; the version's own file may still do
        return None
    return linear


def _read_linear(store: Store, record: VersionRecord, signature: Signature | None
                 ) -> Predictor | None:
    """A LinearPredictor over the version's linear load cache; None when it has none, when its
    requests would not all reach numpy as floats of the model's width (the input checks cast
    them to the signature's dtype; scikit-learn converts other dtypes its own way), or when
    anything about it fails, which is logged."""
    from app.formats.linear import LinearPredictor, load_linear, serves_from_arrays

    if not serves_from_arrays(signature):
        return None
    found = _cache_bytes(store, record, "linear")
    if found is None:
        return None
    try:
        return LinearPredictor(load_linear(found[0]), signature, fallback=None)
    except ModelDepotError as exc:
        log.warning("%s version %d: linear load cache not used (%s); loading its file",
                    record.model, record.version, exc.message)
        return None


def _load_cached(store: Store, record: VersionRecord, signature: Any) -> Predictor | None:
    """The version from its pickled load cache (app/formats/load_cache.py); None (and the served
    file is loaded) when there is none, or anything about it fails, which is logged: the cache
    is only ever a shortcut."""
    from app.formats.linear import linear_predictor
    from app.formats.load_cache import load_cache
    from app.formats.signature import signature_from_estimator

    found = _cache_bytes(store, record, "pickle")
    if found is None:
        return None
    try:
        estimator = load_cache(*found)
        return linear_predictor(estimator, signature or signature_from_estimator(estimator))
    except ModelDepotError as exc:
        log.warning("%s version %d: load cache not used (%s); loading its file", record.model,
                    record.version, exc.message)
    return None


def _cache_bytes(store: Store, record: VersionRecord, form: str
                 ) -> tuple[bytes, CacheRecipe] | None:
    """The load cache's bytes and recipe when the version has one of this form, written by
    this process's library versions, whose sha256 is the recorded one; else None (logged)."""
    from app.formats.load_cache import CacheRecipe

    digest, recipe_data = record.load_cache_sha256, record.load_cache_recipe
    if not digest or not isinstance(recipe_data, dict) or \
            recipe_data.get("form", "pickle") != form:
        return None
    try:
        recipe = CacheRecipe.from_dict(recipe_data)
        if not recipe.current():
            log.info("%s version %d: load cache written by other library versions; loading its "
                     "file", record.model, record.version)
            return None
        data = store.blobs.path(digest).read_bytes()
    except ModelDepotError as exc:
        log.warning("%s version %d: load cache not used (%s); loading its file", record.model,
                    record.version, exc.message)
        return None
    except OSError as exc:
        log.warning("%s version %d: load cache unreadable (%s); loading its file", record.model,
                    record.version, exc.strerror)
        return None
    if hashlib.sha256(data).hexdigest() != digest:
        log.error("the load cache of %s version %d does not match its sha256; loading its file",
                  record.model, record.version)
        return None
    return data, recipe


def warm_up(predictor: Predictor, signature: Signature | None, record: VersionRecord) -> None:
    """One predict on a zero row, so the first client never pays lazy set-up, and a version that
    cannot predict at all never takes traffic."""
    n_features = getattr(signature, "n_features", None)
    if not n_features:
        log.info("%s version %d has no feature count: no warm-up", record.model, record.version)
        return
    dtype = InputSpec.from_signature(signature, 1).dtype
    row = np.zeros((1, n_features), dtype=dtype) if dtype.kind != "O" else \
        np.full((1, n_features), "", dtype=object)
    try:
        predictor.predict(row)
        if getattr(predictor, "has_proba", False):
            predictor.predict_proba(row)
    except Exception as exc:
        log.warning("warm-up of %s version %d failed: %r", record.model, record.version, exc)
        raise ModelUnavailable(
            f"Version {record.version} of {record.model!r} failed its warm-up prediction "
            f"({type(exc).__name__}); it is not served."
        ) from None


def _signature(record: VersionRecord) -> Any:
    if not record.signature:
        return None
    from app.formats.signature import Signature

    try:
        return Signature.from_dict(record.signature)
    except Exception:
        log.warning("%s version %d has an unreadable signature", record.model, record.version)
        return None


def outputs_of(predictor: Predictor) -> tuple[str, ...]:
    outputs = ["predict"]
    if getattr(predictor, "has_proba", False):
        outputs.append("predict_proba")
    return tuple(outputs)
