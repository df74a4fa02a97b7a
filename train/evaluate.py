"""Score a bundle on the test split through the real interpreter, beside naive baselines.

Every method is scored on the same forecast origins: the steps t of the test split with at
least seq_len samples of test history and a full horizon after them, all inside one segment
(no origin's window or horizon crosses a long hole). The stream model starts from zero state
at every segment start, as the daemon resets a stream after a long gap.

With quantiles, the model's methods also carry their intervals (`Predictions.bands`), scored
by coverage: the fraction of the truth at or below each quantile (train/quantiles.py).

# N: test length  M: scored origins  L: seq_len  H: horizon  T: targets  F: features
# Q: quantiles  C: output columns T * (1 + Q)
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
from seqcast.train.quantiles import coverage, split
from seqcast.train.windows import future_targets, window_origins, windows


@dataclass(frozen=True)
class Predictions:
    truth: np.ndarray  # (M, H, T) original units
    by_method: dict[str, np.ndarray]  # method -> (M, H, T)
    origin_times: np.ndarray  # (M,) ts of the last input of each forecast
    baselines: dict[str, Any] = field(default_factory=dict)  # what baseline_forecasts recorded
    quantiles: tuple[float, ...] = ()
    bands: dict[str, np.ndarray] = field(default_factory=dict)  # method -> (M, H, T, Q)


def default_season(grid: Grid) -> int:
    """The grid's first natural season in steps (`baselines.seasons_for`), 1 when it has none."""
    seasons = seasons_for(grid)
    return seasons[0] if seasons else 1


def stream_predictions(
    model: LoadedModel, x: np.ndarray, segment_starts: np.ndarray | None = None
) -> np.ndarray:
    """Step the step model over the whole of x (N, F), batch 1, from zero state at every segment
    start: -> (N, H, C)."""
    resets = {0} if segment_starts is None else {int(s) for s in segment_starts}
    m = model.bundle.manifest
    out = np.empty((len(x), m.horizon, len(m.output_columns)), np.float32)
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
    bands: dict[str, np.ndarray] = {}
    outputs = {"window": model.window(xw)}  # (M, H, C)
    if model.has_step:
        outputs["stream"] = stream_predictions(model, x, starts)[origins]
    T, Q = len(m.targets), len(m.quantiles)
    for method, y in outputs.items():
        point, quant = split(y, T, Q)  # (M, H, T), (M, H, T, Q)
        preds[method] = scaler.unscale_targets(point)
        if Q:
            bands[method] = quant * scaler.target_std[:, None] + scaler.target_mean[:, None]

    baselines, info = baseline_forecasts(history, test, origins, seasons, H, strong_baseline)
    preds |= baselines
    return Predictions(truth, preds, test.times[origins], info, tuple(m.quantiles), bands)


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
        if method in p.bands:
            out[method].update(coverage(p.truth, p.bands[method], p.quantiles, target_names))
    out["baselines"] = p.baselines
    if any(k in out for k in ("stream", "window")):
        out["verdict"] = verdict(out)
    return out


def format_table(metrics: dict[str, Any]) -> str:
    """MAE and RMSE per method; with quantiles, each quantile's empirical coverage (its
    nominal level in the header) and the interval's mean width."""
    models = [k for k in ("window", "stream") if k in metrics]
    methods = models + [k for k in metrics if is_baseline(k) and isinstance(metrics[k], dict)]
    bands = next((metrics[k] for k in methods if "quantiles" in metrics[k]), None)
    names = list(bands["quantiles"]) if bands else []
    head = f"{'method':<20}{'MAE':>12}{'RMSE':>12}"
    head += "".join(f"{n + ' cov':>12}" for n in names)
    head += f"{'width':>12}" if bands and "interval" in bands else ""
    lines = [head, "-" * len(head)]
    for k in methods:
        row = f"{k:<20}{metrics[k]['mae']:>12.3f}{metrics[k]['rmse']:>12.3f}"
        qs = metrics[k].get("quantiles", {})
        row += "".join(f"{qs[n]['coverage']:>12.3f}" if n in qs else f"{'':>12}" for n in names)
        if "interval" in metrics[k]:
            row += f"{metrics[k]['interval']['mean_width']:>12.3f}"
        lines.append(row.rstrip())
    return "\n".join(lines)


def coverage_line(metrics: dict[str, Any]) -> str | None:
    """One line on the intervals of the best method, for the CLI; None without quantiles."""
    best = "stream" if "stream" in metrics else "window"
    qs = metrics.get(best, {}).get("quantiles")
    if not qs:
        return None
    parts = [f"{n} {v['coverage']:.1%} (nominal {v['nominal']:.1%})" for n, v in qs.items()]
    return f"test coverage ({best}): " + ", ".join(parts)
