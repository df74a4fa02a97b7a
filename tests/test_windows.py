"""Windowing and sequence cutting: exact indices, and properties over arbitrary shapes."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from seqcast.train.windows import future_targets, sequences, windows


def test_windows_exact_small_case():
    x = np.arange(20.0).reshape(10, 2)
    y = np.arange(10.0).reshape(10, 1)
    X, Y = windows(x, y, seq_len=3, horizon=2)
    assert X.shape == (6, 3, 2) and Y.shape == (6, 2, 1)
    np.testing.assert_array_equal(X[0], x[0:3])
    np.testing.assert_array_equal(Y[0, :, 0], [3.0, 4.0])  # the two steps after the window
    np.testing.assert_array_equal(X[-1], x[5:8])
    np.testing.assert_array_equal(Y[-1, :, 0], [8.0, 9.0])


def test_windows_too_short_is_an_error_with_numbers():
    with pytest.raises(ValueError, match=r"shorter than seq_len \(8\) \+ horizon \(3\)"):
        windows(np.zeros((10, 1)), np.zeros((10, 1)), 8, 3)


@given(
    n=st.integers(2, 80),
    f=st.integers(1, 3),
    t=st.integers(1, 2),
    seq_len=st.integers(1, 20),
    horizon=st.integers(1, 6),
)
def test_windows_match_the_definition(n, f, t, seq_len, horizon):
    rng = np.random.default_rng(n * 31 + seq_len)
    x, y = rng.normal(size=(n, f)), rng.normal(size=(n, t))
    if n - seq_len - horizon + 1 <= 0:
        with pytest.raises(ValueError):
            windows(x, y, seq_len, horizon)
        return
    X, Y = windows(x, y, seq_len, horizon)
    assert len(X) == len(Y) == n - seq_len - horizon + 1
    for i in (0, len(X) // 2, len(X) - 1):
        np.testing.assert_array_equal(X[i], x[i : i + seq_len])
        np.testing.assert_array_equal(Y[i], y[i + seq_len : i + seq_len + horizon])


@given(
    n=st.integers(5, 120),
    length=st.integers(1, 30),
    stride=st.integers(1, 10),
    horizon=st.integers(1, 4),
)
def test_sequences_cover_the_series_and_align_targets(n, length, stride, horizon):
    x = np.arange(n, dtype=float)[:, None]
    y = 10 * np.arange(n, dtype=float)[:, None]
    if n - horizon < length:
        with pytest.raises(ValueError):
            sequences(x, y, length, stride, horizon)
        return
    X, Y = sequences(x, y, length, stride, horizon)
    assert X.shape[1:] == (length, 1) and Y.shape[1:] == (length, horizon, 1)
    assert X[0, 0, 0] == 0 and X[-1, -1, 0] == n - horizon - 1  # nothing usable left out
    starts = X[:, 0, 0]
    assert np.all(np.diff(starts) <= stride) and np.all(np.diff(starts) > 0)
    # the target after step t is the next `horizon` values of y
    i = len(X) // 2
    for t in (0, length - 1):
        step = int(X[i, t, 0])
        np.testing.assert_array_equal(Y[i, t, :, 0], 10 * np.arange(step + 1, step + 1 + horizon))


def test_future_targets_shape():
    y = np.arange(12.0).reshape(6, 2)
    fut = future_targets(y, 2)
    assert fut.shape == (4, 2, 2)
    np.testing.assert_array_equal(fut[0], y[1:3])
