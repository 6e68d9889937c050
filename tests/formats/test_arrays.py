"""all_finite is np.isfinite(arr).all(), whatever the size, dtype or where a bad value sits."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from app.formats.arrays import all_finite

VALUES = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64),
                   st.sampled_from([0.0, -0.0, 1e308, -1e308, 5e-324]))


@settings(max_examples=200, deadline=None)
@given(st.lists(VALUES, max_size=64), st.sampled_from([np.float64, np.float32]))
def test_small_arrays_agree_with_numpy(values: list[float], dtype: type) -> None:
    with np.errstate(over="ignore"):
        arr = np.asarray(values, dtype=dtype)
    assert all_finite(arr) == bool(np.isfinite(arr).all())
    assert all_finite(arr.reshape(1, -1)) == bool(np.isfinite(arr).all())


def test_bad_value_anywhere_in_a_large_array() -> None:
    arr = np.zeros((1000, 20))  # past the small-array path
    assert all_finite(arr)
    for position, bad in ((0, np.nan), (19_999, np.inf), (7_777, -np.inf)):
        spoiled = arr.copy()
        spoiled.reshape(-1)[position] = bad
        assert not all_finite(spoiled)
        assert all_finite(spoiled[:, ::2]) == bool(np.isfinite(spoiled[:, ::2]).all())


def test_empty_is_finite() -> None:
    assert all_finite(np.zeros((0, 3)))
