"""Windowing and sequence cutting: exact indices, and properties over arbitrary shapes."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from seqcast.train.windows import (
    future_targets,
    segment_bounds,
    segment_sequences,
    sequences,
    window_origins,
    windows,
)


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


@given(
    lengths=st.lists(st.integers(1, 30), min_size=1, max_size=5),
    seq_len=st.integers(1, 8),
    horizon=st.integers(1, 4),
)
def test_segment_windows_are_the_windows_of_each_segment(lengths, seq_len, horizon):
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    n = int(sum(lengths))
    x = np.arange(n, dtype=float)[:, None]
    origins = window_origins(starts, n, seq_len, horizon)
    pieces = [windows(x[a:b], x[a:b], seq_len, horizon) for a, b in segment_bounds(starts, n)
              if b - a >= seq_len + horizon]  # fmt: skip
    if not pieces:
        with pytest.raises(ValueError, match="shorter than seq_len"):
            windows(x, x, seq_len, horizon, starts)
        return
    X, Y = windows(x, x, seq_len, horizon, starts)
    np.testing.assert_array_equal(X, np.concatenate([p[0] for p in pieces]))
    np.testing.assert_array_equal(Y, np.concatenate([p[1] for p in pieces]))
    np.testing.assert_array_equal(X[:, -1, 0], origins)  # the origin is the last input step


def test_segment_sequences_pad_short_segments_and_never_cross():
    x = np.arange(30, dtype=float)[:, None]
    X, Y, valid = segment_sequences(x, 10 * x, 8, 4, 2, np.array([0, 20]), 5)
    assert valid[:-1].all() and valid[-1].tolist() == [True] * 8  # 20 rows: full chunks
    X, Y, valid = segment_sequences(x, 10 * x, 12, 4, 2, np.array([0, 20]), 5)
    last = X[-1, valid[-1], 0]  # the 10-row segment: 8 steps with a future, then padding
    np.testing.assert_array_equal(last, np.arange(20, 28))
    assert not valid[-1, 8:].any() and (X[-1, 8:] == 0).all()
    np.testing.assert_array_equal(Y[-1, 7, :, 0], [280, 290])  # targets stay in the segment
    for seq, ok in zip(X, valid, strict=True):
        assert np.all(np.diff(seq[ok, 0]) == 1)
