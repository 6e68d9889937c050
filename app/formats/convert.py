"""Turn a local pickle the user trusts into a skops file, when skops can represent it."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from app.atomic import write_atomically
from app.errors import ModelDepotError, UnsafeModel
from app.formats.skops_format import trusted_types

_PROBE_ROWS = 3


def convert_pickle_to_skops(src: Path, dst: Path) -> bool:
    """Write `dst` (atomically) and return True if the skops copy predicts like the pickle.

    Returns False when skops cannot represent the model, needs types outside the allow-list,
    or predicts differently; the caller then uploads the pickle itself (with trust).
    Loading `src` runs its code: call this only for the user's own file.
    """
    import numpy as np
    import skops.io

    from app.formats.pickle_format import load_pickle

    estimator, _, _, _ = load_pickle(Path(src))
    n_features = getattr(estimator, "n_features_in_", None)
    if n_features is None or not callable(getattr(estimator, "predict", None)):
        return False
    probe = np.zeros((_PROBE_ROWS, int(n_features)))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = skops.io.dumps(estimator)
            try:  # the upload will be judged by the same rule: check it here
                trusted = trusted_types(data)
            except UnsafeModel:
                return False
            copy = skops.io.loads(data, trusted=trusted)
            expected = np.asarray(estimator.predict(probe))
            got = np.asarray(copy.predict(probe))
    except (ModelDepotError, MemoryError):
        raise
    except Exception:
        # skops raises TypeError/NotImplementedError/... for objects it cannot represent.
        return False
    if expected.shape != got.shape or not same_predictions(expected, got):
        return False
    write_atomically(Path(dst), data)
    return True


def same_predictions(a: Any, b: Any) -> bool:
    import numpy as np

    try:
        return bool(np.array_equal(a, b, equal_nan=True))
    except TypeError:  # equal_nan does not apply to object or string arrays
        return bool(np.array_equal(a, b))
