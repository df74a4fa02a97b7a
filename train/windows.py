"""Cut scaled series into training examples, vectorised with `sliding_window_view`.

# N: series length  L: seq_len  H: horizon  F: features  T: targets  S: sequence length
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def future_targets(y: np.ndarray, horizon: int) -> np.ndarray:
    """For each step t, the targets at t+1..t+H: (N, T) -> (N - H, H, T)."""
    # sliding_window_view puts the window axis last: (N-H, T, H) -> (N-H, H, T)
    return np.ascontiguousarray(sliding_window_view(y[1:], horizon, axis=0).transpose(0, 2, 1))


def windows(
    x: np.ndarray, y: np.ndarray, seq_len: int, horizon: int
) -> tuple[np.ndarray, np.ndarray]:
    """Window examples: x (N, F), y (N, T) -> X (M, L, F), Y (M, H, T), M = N - L - H + 1.

    Example i sees steps i..i+L-1 and predicts the H steps after its last one.
    """
    n = len(x)
    m = n - seq_len - horizon + 1
    if m <= 0:
        raise ValueError(
            f"series of {n} steps is shorter than seq_len ({seq_len}) + horizon ({horizon})"
        )
    xw = sliding_window_view(x, seq_len, axis=0).transpose(0, 2, 1)[:m]  # -> (M, L, F)
    yw = future_targets(y, horizon)[seq_len - 1 : seq_len - 1 + m]  # -> (M, H, T)
    return np.ascontiguousarray(xw), yw


def sequences(
    x: np.ndarray, y: np.ndarray, length: int, stride: int, horizon: int
) -> tuple[np.ndarray, np.ndarray]:
    """Long sequence-to-sequence examples for streaming training.

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
