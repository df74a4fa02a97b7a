"""Cut scaled series into training examples, vectorised with `sliding_window_view`.

A series may hold several segments (row indices in `segment_starts`, the first 0): a long hole
lies between two segments, so no window, sequence or forecast origin spans two of them.

# N: series length  L: seq_len  H: horizon  F: features  T: targets  S: sequence length
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def future_targets(y: np.ndarray, horizon: int) -> np.ndarray:
    """For each step t, the targets at t+1..t+H: (N, T) -> (N - H, H, T)."""
    # sliding_window_view puts the window axis last: (N-H, T, H) -> (N-H, H, T)
    return np.ascontiguousarray(sliding_window_view(y[1:], horizon, axis=0).transpose(0, 2, 1))


def segment_bounds(segment_starts: np.ndarray | None, n: int) -> list[tuple[int, int]]:
    """[(start, stop)] of every segment of a series of n rows (one segment when None)."""
    starts = [0] if segment_starts is None or len(segment_starts) == 0 else list(segment_starts)
    stops = [*starts[1:], n]
    return [(int(a), int(b)) for a, b in zip(starts, stops, strict=True)]


def window_origins(
    segment_starts: np.ndarray | None, n: int, seq_len: int, horizon: int
) -> np.ndarray:
    """The last input step of every window inside one segment with its full horizon after it:
    t with t - L + 1 >= start and t + H < stop of its segment. (M,) int64, increasing."""
    parts = [
        np.arange(a + seq_len - 1, b - horizon, dtype=np.int64)
        for a, b in segment_bounds(segment_starts, n)
    ]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def windows(
    x: np.ndarray,
    y: np.ndarray,
    seq_len: int,
    horizon: int,
    segment_starts: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Window examples: x (N, F), y (N, T) -> X (M, L, F), Y (M, H, T).

    Example i sees steps t-L+1..t (t = its origin) and predicts the H steps after t; with one
    segment M = N - L - H + 1, with several the windows of each segment long enough for one.
    """
    n = len(x)
    origins = window_origins(segment_starts, n, seq_len, horizon)
    if len(origins) == 0:
        longest = max(b - a for a, b in segment_bounds(segment_starts, n))
        what = f"series of {n} steps" if longest == n else f"longest segment ({longest} steps)"
        raise ValueError(f"{what} is shorter than seq_len ({seq_len}) + horizon ({horizon})")
    first = origins[0] - seq_len + 1
    m = len(origins)
    if origins[-1] - origins[0] == m - 1:  # one stretch: strided views, as fast as it gets
        xw = sliding_window_view(x[first:], seq_len, axis=0).transpose(0, 2, 1)[:m]  # (M, L, F)
        return np.ascontiguousarray(xw), future_targets(y, horizon)[origins]
    idx = origins[:, None] - seq_len + 1 + np.arange(seq_len)[None, :]  # -> (M, L)
    return x[idx], future_targets(y, horizon)[origins]


def sequences(
    x: np.ndarray, y: np.ndarray, length: int, stride: int, horizon: int
) -> tuple[np.ndarray, np.ndarray]:
    """Long sequence-to-sequence examples for streaming training (one segment).

    x (N, F), y (N, T) -> X (M, S, F), Y (M, S, H, T): Y[i, t] is the H-step target after X[i, t].
    Chunks start every `stride` steps; the last chunk is aligned to the end so no data is unused.
    """
    usable = len(x) - horizon  # steps that have a full future
    if usable < length:
        raise ValueError(
            f"series of {len(x)} steps is too short for sequences of {length} + horizon {horizon}"
        )
    fut = future_targets(y, horizon)  # -> (N-H, H, T)
    starts = np.arange(0, usable - length + 1, stride)
    if starts[-1] != usable - length:
        starts = np.append(starts, usable - length)
    idx = starts[:, None] + np.arange(length)[None, :]  # -> (M, S)
    return x[idx], fut[idx]


def segment_sequences(
    x: np.ndarray,
    y: np.ndarray,
    length: int,
    stride: int,
    horizon: int,
    segment_starts: np.ndarray | None,
    min_rows: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`sequences` cut inside each segment of at least `min_rows` rows -> X, Y, valid (M, S).

    A segment too short for `length` steps with a future gives one sequence padded at the end
    (zeros, valid False): a causal model's outputs at the real steps do not see the padding, and
    padded steps carry no loss. Each sequence starts from zero state, as the daemon does after a
    long gap.
    """
    xs, ys, valid = [], [], []
    for a, b in segment_bounds(segment_starts, len(x)):
        if b - a < min_rows or b - a <= horizon:
            continue
        if b - a - horizon >= length:
            X, Y = sequences(x[a:b], y[a:b], length, stride, horizon)
            ok = np.ones(X.shape[:2], bool)
        else:
            real = b - a - horizon
            X = np.zeros((1, length, x.shape[1]), x.dtype)
            Y = np.zeros((1, length, horizon, y.shape[1]), y.dtype)
            X[0, :real] = x[a : a + real]
            Y[0, :real] = future_targets(y[a:b], horizon)
            ok = (np.arange(length) < real)[None, :]
        xs.append(X)
        ys.append(Y)
        valid.append(ok)
    if not xs:
        raise ValueError(f"no segment holds {max(min_rows, horizon + 1)} rows for a sequence")
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(valid)


def longest_segment(segment_starts: np.ndarray | None, n: int) -> tuple[int, int]:
    """(start, stop) of the longest segment."""
    return max(segment_bounds(segment_starts, n), key=lambda ab: ab[1] - ab[0])
