"""Array checks that run on every prediction, written for small arrays.

A request of one row is a few dozen numbers: there numpy's fixed cost per call is most of the
cost, and a reduction (`ndarray.all`) costs about a microsecond before it reads a value.
"""

from __future__ import annotations

import numpy as np

_SMALL = 4096  # values; past this the reduction's speed per value wins


def all_finite(arr: np.ndarray) -> bool:
    """No NaN or infinity in a float array: `np.isfinite(arr).all()`, at half its cost on the
    arrays of a prediction."""
    finite = np.isfinite(arr)
    if finite.size <= _SMALL:
        # A bool array's bytes are 0 or 1: one C scan of them, no reduction machinery.
        return b"\x00" not in finite.tobytes()
    return bool(finite.all())
