"""Score a bundle on the test split through the real interpreter, beside naive baselines.

Every method is scored on the same forecast origins: the steps t of the test split with at
least seq_len samples of test history and a full horizon after them, all inside one segment
(no origin's window or horizon crosses a long hole). The stream model starts from zero state
at every segment start, as the daemon resets a stream after a long gap.

# N: test length  M: scored origins  L: seq_len  H: horizon  T: targets  F: features
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from seqcast.edge.model.runtime import LoadedModel
from seqcast.edge.timegrid import Grid
from seqcast.train.baselines import baseline_forecasts, is_baseline, seasons_for, verdict
from seqcast.train.data import FittedScaler, Series
from seqcast.train.windows import future_targets, window_origins, windows


@dataclass(frozen=True)
class Predictions:
    truth: np.ndarray  # (M, H, T) original units
    by_method: dict[str, np.ndarray]  # method -> (M, H, T)
    origin_times: np.ndarray  # (M,) ts of the last input of each forecast
    baselines: dict[str, Any] = field(default_factory=dict)  # what baseline_forecasts recorded


def default_season(grid: Grid) -> int:
    """The grid's first natural season in steps (`baselines.seasons_for`), 1 when it has none."""
    seasons = seasons_for(grid)
    return seasons[0] if seasons else 1


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


def predict(
    model: LoadedModel,
    scaler: FittedScaler,
    history: Series,
    test: Series,
    seasons: Sequence[int],
    strong_baseline: bool = True,
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

    baselines, info = baseline_forecasts(history, test, origins, seasons, H, strong_baseline)
    return Predictions(truth, preds | baselines, test.times[origins], info)


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
    out["baselines"] = p.baselines
    if any(k in out for k in ("stream", "window")):
        out["verdict"] = verdict(out)
    return out


def format_table(metrics: dict[str, Any]) -> str:
    models = [k for k in ("window", "stream") if k in metrics]
    methods = models + [k for k in metrics if is_baseline(k) and isinstance(metrics[k], dict)]
    lines = [f"{'method':<20}{'MAE':>12}{'RMSE':>12}", "-" * 44]
    for k in methods:
        lines.append(f"{k:<20}{metrics[k]['mae']:>12.3f}{metrics[k]['rmse']:>12.3f}")
    return "\n".join(lines)
