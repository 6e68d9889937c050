"""Fitted linear models answered with numpy alone, by scikit-learn's own rules.

Why: scikit-learn's predict and predict_proba of a LogisticRegression cost about 0.3 ms each
(input validation, array-API dispatch) for a product of one row with one coefficient matrix;
under concurrent single-row load that fixed cost is most of a request (issue 18). And a server
that needs only the coefficients need not import scikit-learn and SciPy at all (about 70 MB of
resident memory), nor onnxruntime for a twin: the load cache keeps a linear model as its arrays
(`dump_linear`, an .npz read with allow_pickle=False), and `load_linear` serves it from those.

This is the same arithmetic scikit-learn runs, in the same order, so the answers are the same
bits, not close ones (tests/inference/test_linear_parity.py checks labels and probabilities
for many random models and inputs against the estimator itself):

- decision = X @ coef_.T + intercept_ (LinearClassifierMixin.decision_function, one column
  flattened; LinearModel._decision_function for regressors);
- labels: classes_[decision > 0] for one column, classes_[argmax] otherwise;
- LogisticRegression.predict_proba: two classes, expit(decision) stacked as [1 - p, p], where
  SciPy's expit is 1 / (1 + exp(-x)) with the C library's exp, which math.exp also calls (numpy's
  own exp may differ in the last bit); more classes, softmax (the row's max subtracted, np.exp,
  divided by the row's sum).

It covers only the exact classes below, for the scikit-learn releases whose source these rules
were read from (RULES_FROM). With the estimator at hand (`linear_predictor`), any other class,
release, or input scikit-learn itself would refuse or convert (not float, not finite, wrong
width) goes to the estimator unchanged, so every check and error message stays scikit-learn's.
From the arrays alone, such an input is refused; the server's input checks
(app/inference/inputs.py) already cast every request to the model's float dtype and refuse
cells that are not finite, so that refusal is a last guard, not a path requests take.
"""

from __future__ import annotations

import io
import math
import zipfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from app.errors import BadRequest, InvalidModelFile, Unprocessable
from app.formats.arrays import all_finite

if TYPE_CHECKING:
    from app.formats.predictor import Predictor, SklearnPredictor
    from app.formats.signature import Signature

# scikit-learn releases whose linear_model/_base.py, _logistic.py and utils/extmath.py these
# rules were read from.
RULES_FROM = ("1.9.",)
CLASSIFIERS = frozenset({"sklearn.linear_model._logistic.LogisticRegression"})
_FLOATS = (np.dtype(np.float64), np.dtype(np.float32))
REGRESSORS = frozenset({"sklearn.linear_model._base.LinearRegression",
                        "sklearn.linear_model._ridge.Ridge"})
# Kinds of label arrays an .npz holds without pickle: bool, integers, floats, unicode strings.
_LABEL_KINDS = "biufU"
# Signature input dtypes whose requests reach a model as floats (app/inference/inputs.py casts
# each request to the signature's dtype): only those are answered from the arrays alone.
ARRAY_INPUT_DTYPES = ("float64", "float32")


def serves_from_arrays(signature: Signature | None) -> bool:
    """Whether a version with this signature is answered from its arrays: every request then
    arrives as floats of the model's width. Other dtypes keep scikit-learn's own conversion."""
    return signature is not None and signature.input_dtype in ARRAY_INPUT_DTYPES


def _qualified(estimator: Any) -> str:
    cls = type(estimator)
    return f"{cls.__module__}.{cls.__qualname__}"


@dataclass(frozen=True)
class LinearModel:
    """What the rules need of a fitted linear model: its arrays, as the estimator holds them."""

    coef: np.ndarray
    # An ndarray, a numpy scalar or a Python float, as scikit-learn left it: its type decides the
    # result's dtype for float32 inputs (a Python float adapts to them, a numpy float64 not).
    intercept: Any
    classes: np.ndarray | None  # None for a regressor

    @property
    def classifier(self) -> bool:
        return self.classes is not None


def linear_model_of(estimator: Any) -> LinearModel | None:
    """The estimator's arrays when the rules above are scikit-learn's for it, else None."""
    import sklearn

    name = _qualified(estimator)
    if not sklearn.__version__.startswith(RULES_FROM) or name not in CLASSIFIERS | REGRESSORS:
        return None
    coef = getattr(estimator, "coef_", None)
    classes = getattr(estimator, "classes_", None) if name in CLASSIFIERS else None
    model = LinearModel(coef, getattr(estimator, "intercept_", None), classes)  # type: ignore[arg-type]
    return model if _consistent(model, name in CLASSIFIERS) else None


def _consistent(model: LinearModel, classifier: bool) -> bool:
    """Finite float coefficients, an intercept of the same kind, and for a classifier labels
    whose count picks the same rule in predict (columns) as in predict_proba (classes)."""
    coef, intercept, classes = model.coef, model.intercept, model.classes
    if not (isinstance(coef, np.ndarray) and coef.dtype in _FLOATS and coef.ndim in (1, 2)
            and coef.size and np.isfinite(coef).all()):
        return False
    if not (isinstance(intercept, np.ndarray | np.generic | float) and
            np.asarray(intercept).dtype in _FLOATS and np.isfinite(intercept).all()):
        return False
    if not classifier:  # one target: a scalar; several: one per row of coef
        return classes is None and np.shape(intercept) in \
            ((), (coef.shape[0],) if coef.ndim == 2 else ())
    return isinstance(classes, np.ndarray) and classes.ndim == 1 and coef.ndim == 2 and \
        len(classes) >= 2 and (coef.shape[0] == 1) == (len(classes) <= 2) and \
        np.shape(intercept) == (coef.shape[0],)


def linear_predictor(estimator: Any, signature: Signature | None) -> Predictor:
    """A LinearPredictor over the estimator where the rules above are scikit-learn's, else a
    SklearnPredictor."""
    from app.formats.predictor import SklearnPredictor

    plain = SklearnPredictor(estimator, signature)
    model = linear_model_of(estimator)
    return plain if model is None else LinearPredictor(model, signature, fallback=plain)


def dump_linear(model: LinearModel) -> bytes | None:
    """The model's arrays as .npz bytes (no pickle), or None when its labels need pickle."""
    if model.classes is not None and model.classes.dtype.kind not in _LABEL_KINDS:
        return None
    # A Python float (fit_intercept=False) is stored under its own name: as a 0-d array it
    # would come back as a numpy float64, which does not adapt to float32 inputs.
    python_float = type(model.intercept) is float
    arrays = {"coef": model.coef,
              "intercept_float" if python_float else "intercept": np.asarray(model.intercept)}
    if model.classes is not None:
        arrays["classes"] = model.classes
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **arrays)
    return buffer.getvalue()


_ARRAY_NAMES = ("coef", "intercept", "intercept_float", "classes")


def _read_arrays(data: bytes) -> dict[str, np.ndarray]:
    """The .npz members as arrays, in one pass and without np.load: each member stored
    uncompressed, a known name, no object dtype, and exactly the bytes its header declares. numpy
    allocates what a header claims before reading, so a forged header could otherwise ask for any
    amount of memory; the header is checked against the member's size first."""
    # The end-of-central-directory record (np.savez writes no comment) gives the member count
    # before zipfile parses the directory, which it holds in memory whole.
    if len(data) < 22 or data[-22:-18] != b"PK\x05\x06" or \
            int.from_bytes(data[-12:-10], "little") > 3:
        raise InvalidModelFile("The linear load cache is not as ModelDepot writes it.")
    arrays: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = archive.infolist()
        if len(members) > 3:
            raise InvalidModelFile("The linear load cache holds unexpected arrays.")
        for member in members:
            name = member.filename.removesuffix(".npy")
            if member.compress_type != zipfile.ZIP_STORED or name not in _ARRAY_NAMES or \
                    name in arrays:
                raise InvalidModelFile("The linear load cache is not as ModelDepot writes it.")
            with archive.open(member) as stream:
                version = np.lib.format.read_magic(stream)
                if version not in ((1, 0), (2, 0)):  # what np.savez writes
                    raise InvalidModelFile("The linear load cache is not as ModelDepot writes "
                                           "it.")
                reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                    np.lib.format.read_array_header_2_0
                shape, fortran, dtype = reader(stream)
                size = math.prod(shape) * dtype.itemsize
                if dtype.hasobject or size > member.file_size:
                    raise InvalidModelFile("An array of the linear load cache claims more "
                                           "bytes than it holds, or objects.")
                raw = stream.read(size)
                if len(raw) != size:
                    raise InvalidModelFile("An array of the linear load cache is cut short.")
            arrays[name] = np.frombuffer(raw, dtype=dtype).reshape(shape,
                                                                   order="F" if fortran else "C")
    return arrays


def load_linear(data: bytes) -> LinearModel:
    """The arrays of `dump_linear` bytes, checked as linear_model_of checks an estimator's."""
    try:
        arrays = _read_arrays(data)
    except InvalidModelFile:
        raise
    except MemoryError:  # the operating system's answer, reported as such by the caller
        raise
    except Exception as exc:  # zipfile and numpy's header parser raise many kinds on bad bytes
        raise InvalidModelFile(f"The linear load cache does not read ({type(exc).__name__}).") \
            from exc
    python_float = "intercept_float" in arrays
    expected = {"coef", "intercept_float" if python_float else "intercept"}
    if not expected <= set(arrays) <= expected | {"classes"}:
        raise InvalidModelFile("The linear load cache holds unexpected arrays.")
    classes = arrays.get("classes")
    stored = arrays["intercept_float" if python_float else "intercept"]
    # A 0-d array stood for a scalar: give back the kind of scalar it was, for its dtype rules.
    intercept: Any = stored
    if python_float and stored.ndim == 0 and stored.dtype == np.float64:
        intercept = float(stored)
    elif stored.ndim == 0:
        intercept = stored[()]
    model = LinearModel(arrays["coef"], intercept, classes)
    if (classes is not None and classes.dtype.kind not in _LABEL_KINDS) or \
            not _consistent(model, classes is not None):
        raise InvalidModelFile("The linear load cache does not hold a consistent linear model.")
    return model


def _expit(scores: np.ndarray) -> np.ndarray:
    """SciPy's expit, bit for bit: for float64, 1 / (1 + exp(-x)) with the C library's exp."""
    if scores.dtype != np.float64:
        from scipy.special import expit  # float32: SciPy's single-precision loop

        return np.asarray(expit(scores))
    out = np.empty_like(scores)
    flat = out.reshape(-1)
    for i, x in enumerate(scores.reshape(-1).tolist()):
        try:
            flat[i] = 1.0 / (1.0 + math.exp(-x))
        except OverflowError:  # exp(-x) is inf in C: 1 / inf
            flat[i] = 0.0
    return out


class LinearPredictor:
    # One row's product takes microseconds, less than a thread handoff: the batcher runs
    # batches up to this many rows on the event loop.
    inline_rows = 64

    def __init__(self, model: LinearModel, signature: Signature | None, *,
                 fallback: SklearnPredictor | None) -> None:
        self.signature = signature
        self.has_proba = model.classifier
        self._fallback = fallback
        # The estimator itself where there is one, as a SklearnPredictor offers it (twin builds
        # and the load cache start from it); None when serving from the arrays alone.
        self.estimator = fallback.estimator if fallback is not None else None
        coef = model.coef
        self._coef_T = coef.T if coef.ndim == 2 else coef
        self._width = coef.shape[-1]
        self._intercept = model.intercept
        self._classes = model.classes

    def _takes(self, X: np.ndarray) -> bool:
        """Inputs scikit-learn would pass through unchanged; anything else goes to it."""
        if isinstance(X, np.ndarray) and X.ndim == 2 and X.shape[1] == self._width and \
                X.shape[0] > 0 and X.dtype in _FLOATS and all_finite(X):
            return True
        if self._fallback is None:
            raise Unprocessable(f"This linear model takes rows of {self._width} finite numbers.")
        return False

    def _decision(self, X: np.ndarray) -> np.ndarray:
        scores: np.ndarray = X @ self._coef_T + self._intercept
        if self._classes is not None and scores.ndim > 1 and scores.shape[1] == 1:
            return scores.reshape(-1)
        return scores

    def _labels(self, scores: np.ndarray) -> np.ndarray:
        assert self._classes is not None
        indices = (scores > 0).astype(np.intp) if scores.ndim == 1 else scores.argmax(axis=1)
        labels: np.ndarray = self._classes.take(indices, axis=0)
        return labels

    def _proba(self, scores: np.ndarray) -> np.ndarray:
        if scores.ndim == 1:  # two classes: _predict_proba_lr
            p = _expit(scores)
            both = np.empty((len(p), 2), dtype=np.float64)  # np.stack([1 - p, p], axis=1)
            np.subtract(1, p, out=both[:, 0])
            both[:, 1] = p
            return both
        X = scores.copy()  # softmax(decision, copy=False) in sklearn; scores are used again
        X -= X.max(axis=1).reshape((-1, 1))
        np.exp(X, out=X)
        X /= X.sum(axis=1).reshape((-1, 1))
        return np.asarray(X, dtype=np.float64)

    def predict(self, X: np.ndarray) -> np.ndarray:
        if not self._takes(X):
            assert self._fallback is not None
            return self._fallback.predict(X)
        scores = self._decision(X)
        return self._labels(scores) if self._classes is not None else scores

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        if self._classes is None or not self._takes(X):
            if self._fallback is None:
                raise BadRequest("This model does not give probabilities (it has no "
                                 "predict_proba).")
            return self._fallback.predict_proba(X)
        return self._proba(self._decision(X))

    def predict_with_proba(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Labels and probabilities from one decision (the batcher asks for both at once)."""
        if self._classes is None or not self._takes(X):
            return self.predict(X), (self.predict_proba(X) if self.has_proba else None)
        scores = self._decision(X)
        return self._labels(scores), self._proba(scores)
