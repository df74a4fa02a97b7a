"""Score a bundle on the test split through the real interpreter, beside naive baselines.

Every method is scored on the same forecast origins: the steps t of the test split with at
least seq_len samples of test history and a full horizon after them, all inside one segment
(no origin's window or horizon crosses a long hole). The stream model starts from zero state
at every segment start, as the daemon resets a stream after a long gap.

# N: test length  M: scored origins  L: seq_len  H: horizon  T: targets  F: features
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from seqcast.edge.model.runtime import LoadedModel
from seqcast.edge.timegrid import Grid
from seqcast.train.data import FittedScaler, Series
from seqcast.train.windows import future_targets, window_origins, windows


@dataclass(frozen=True)
class Predictions:
    truth: np.ndarray  # (M, H, T) original units
    by_method: dict[str, np.ndarray]  # method -> (M, H, T)
    origin_times: np.ndarray  # (M,) ts of the last input of each forecast


def default_season(grid: Grid | float) -> int:
    """Steps per year for calendar grids (12 for months, 4 for quarters), per day for sub-daily
    data (24 hourly, 48 half-hourly), per week for daily data (7), else 1 (persistence)."""
    if isinstance(grid, Grid) and grid.calendar:
        per_year = 12 / int(grid.n)
        return int(per_year) if per_year >= 2 and per_year == int(per_year) else 1
    interval_s = float(grid.n) if isinstance(grid, Grid) else float(grid)
    for period in (86400.0, 7 * 86400.0):
        steps = period / interval_s
        if steps >= 2 and abs(steps - round(steps)) < 1e-6:
            return int(round(steps))
    return 1


def stream_predictions(
    model: LoadedModel, x: np.ndarray, segment_starts: np.ndarray | None = None
) -> np.ndarray:
    """Step the step model over the whole of x (N, F), batch 1, from zero state at every segment
    start: -> (N, H, T)."""
    resets = {0} if segment_starts is None else {int(s) for s in segment_starts}
    out = np.empty(
        (len(x), model.bundle.manifest.horizon, len(model.bundle.manifest.targets)), np.float32
    )
    states = model.zero_states(1)
    for t in range(len(x)):
        if t in resets:
            states = model.zero_states(1)
        y, states = model.step(x[t : t + 1], states)
        out[t] = y[0]
    return out


def seasonal_naive(
    history: Series, test: Series, origins: np.ndarray, season: int, H: int
) -> np.ndarray:
    """The value one season (or a multiple) before each target step, never after the origin,
    looked up by grid step; where that step is in a hole, the value at the origin (persistence).
    -> (M, H, T)"""
    steps = np.concatenate([history.steps, test.steps])
    values = np.concatenate([history.targets, test.targets])
    k = np.arange(1, H + 1)
    back = season * np.ceil(k / season).astype(int)  # same time one season ago, within the past
    want = test.steps[origins][:, None] + k[None, :] - back[None, :]  # (M, H) grid steps
    pos = np.clip(np.searchsorted(steps, want), 0, len(steps) - 1)
    found = steps[pos] == want
    persistence = np.repeat(test.targets[origins][:, None, :], H, axis=1)
    return np.where(found[:, :, None], values[pos], persistence)


def predict(
    model: LoadedModel, scaler: FittedScaler, history: Series, test: Series, season: int
) -> Predictions:
    """`history` is everything before `test` (baselines may look back into it)."""
    m = model.bundle.manifest
    L, H = m.seq_len, m.horizon
    x = scaler.features(test)
    starts = test.segment_starts
    xw, _ = windows(x, np.zeros((len(x), 1), np.float32), L, H, starts)  # -> (M, L, F)
    origins = window_origins(starts, len(x), L, H)  # index in test of each window's last step
    truth = future_targets(test.targets, H)[origins]  # -> (M, H, T)

    preds: dict[str, np.ndarray] = {}
    preds["window"] = scaler.unscale_targets(model.window(xw))
    if model.has_step:
        stream = stream_predictions(model, x, starts)
        preds["stream"] = scaler.unscale_targets(stream[origins])

    preds["persistence"] = np.repeat(test.targets[origins][:, None, :], H, axis=1)
    preds["seasonal_naive"] = seasonal_naive(history, test, origins, season, H)
    return Predictions(truth, preds, test.times[origins])


def score(p: Predictions, target_names: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"origins": int(len(p.truth))}
    for method, yhat in p.by_method.items():
        err = yhat - p.truth  # (M, H, T)
        out[method] = {
            "mae": float(np.mean(np.abs(err))),
            "rmse": float(np.sqrt(np.mean(err**2))),
            "per_target": {
                name: {
                    "mae": np.mean(np.abs(err[:, :, j]), axis=0).round(6).tolist(),
                    "rmse": np.sqrt(np.mean(err[:, :, j] ** 2, axis=0)).round(6).tolist(),
                }
                for j, name in enumerate(target_names)
            },
        }
    return out


def format_table(metrics: dict[str, Any]) -> str:
    methods = [k for k in ("window", "stream", "persistence", "seasonal_naive") if k in metrics]
    lines = [f"{'method':<16}{'MAE':>12}{'RMSE':>12}", "-" * 40]
    for k in methods:
        lines.append(f"{k:<16}{metrics[k]['mae']:>12.3f}{metrics[k]['rmse']:>12.3f}")
    return "\n".join(lines)
