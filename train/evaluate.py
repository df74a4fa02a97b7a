"""Score a bundle on the test split through the real interpreter, beside naive baselines.

Every method is scored on the same forecast origins: the steps t of the test split with at
least seq_len samples of test history (t >= L-1) and a full horizon after them.

# N: test length  M: scored origins  L: seq_len  H: horizon  T: targets  F: features
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from seqcast.edge.model.runtime import LoadedModel
from seqcast.train.data import FittedScaler, Series
from seqcast.train.windows import future_targets, windows


@dataclass(frozen=True)
class Predictions:
    truth: np.ndarray  # (M, H, T) original units
    by_method: dict[str, np.ndarray]  # method -> (M, H, T)
    origin_times: np.ndarray  # (M,) ts of the last input of each forecast


def default_season(interval_s: float) -> int:
    """Steps per day for sub-daily data, per week for daily data, else 1 (persistence)."""
    for period in (86400.0, 7 * 86400.0):
        steps = period / interval_s
        if steps >= 2 and abs(steps - round(steps)) < 1e-6:
            return int(round(steps))
    return 1


def stream_predictions(model: LoadedModel, x: np.ndarray) -> np.ndarray:
    """Step the step model over the whole of x (N, F) from zero state, batch 1: -> (N, H, T)."""
    states = model.zero_states(1)
    out = np.empty(
        (len(x), model.bundle.manifest.horizon, len(model.bundle.manifest.targets)), np.float32
    )
    for t in range(len(x)):
        y, states = model.step(x[t : t + 1], states)
        out[t] = y[0]
    return out


def predict(
    model: LoadedModel, scaler: FittedScaler, history: Series, test: Series, season: int
) -> Predictions:
    """`history` is everything before `test` (baselines may look back into it)."""
    m = model.bundle.manifest
    L, H = m.seq_len, m.horizon
    x = scaler.features(test)
    xw, _ = windows(x, np.zeros((len(x), 1), np.float32), L, H)  # -> (M, L, F)
    n_origins = len(xw)
    origins = np.arange(L - 1, L - 1 + n_origins)  # index in test of each window's last step
    truth = future_targets(test.targets, H)[origins]  # -> (M, H, T)

    preds: dict[str, np.ndarray] = {}
    preds["window"] = scaler.unscale_targets(model.window(xw))
    if model.has_step:
        preds["stream"] = scaler.unscale_targets(stream_predictions(model, x)[origins])

    full = np.concatenate([history.targets, test.targets])  # (len(history) + N, T)
    at = len(history.targets) + origins  # origins in `full`
    preds["persistence"] = np.repeat(full[at][:, None, :], H, axis=1)
    k = np.arange(1, H + 1)
    back = season * np.ceil(k / season).astype(int)  # same time one season ago, within the past
    preds["seasonal_naive"] = full[at[:, None] + k[None, :] - back[None, :]]
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
