"""The engine's check that an invoke's outputs and states are finite: a cheap test per invoke,
then a row by row one only when it may have found something."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np


def maybe_nonfinite(*arrays: np.ndarray) -> bool:
    """False when every element of every array is finite; True when one may not be.

    The hot-path check after each invoke: sums of squares by BLAS (a NaN or an infinity always
    makes them non-finite). Huge finite values can overflow them too (a false alarm, never a
    miss), so a True is confirmed row by row with `finite_rows`.
    """
    total = 0.0  # a Python float: overflowing it is silent
    for a in arrays:
        total += float(np.vdot(a, a))
    return not math.isfinite(total)


def finite_rows(arrays: Iterable[np.ndarray], n: int) -> np.ndarray:
    """(n,) bool: rows (first axis) whose elements are all finite in every array."""
    ok = np.ones(n, bool)
    for a in arrays:
        ok &= np.isfinite(a.reshape(n, -1)).all(axis=1)
    return ok
