"""What the validation split decides after training: whether the network forecasts levels or
departures from a naive forecast (`--predict auto`), and how wide the prediction intervals are
(their calibration).
Both look at validation only, never at the test split the report scores.

# N: forecast origins  M: sequences or windows  S: sequence length  H: horizon  T: targets
# Q: quantiles  C: output columns T * (1 + Q)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from seqcast.edge import quantiles as names
from seqcast.train.quantiles import (
    calibrate,
    calibrate_width,
    coverage,
    per_side_is_enough,
    split,
)

log = logging.getLogger(__name__)

# the level model's validation MSE under this share of the best naive forecast's is a clear win:
# the departure models are not trained (on long series each costs a full training). Closer than
# that, they often win: a trend or a season the level model follows only roughly
CLEAR_WIN = 0.5
# validation values outside the training range, as a share, above which the series is a trend
# that a level model cannot follow (`choose_predict`)
LEAVES_RANGE = 0.05

Trained = tuple[Any, dict[str, list[float]], float, tuple[np.ndarray, ...]]  # f, history, s, val


def best_val_mse(history: dict[str, list[float]]) -> float:
    """The point forecasts' best validation MSE (scaled units) over the epochs."""
    return float(min(history.get("val_point_mse", history.get("val_loss", [np.inf]))))


def naive_mse(
    y: np.ndarray, segment_starts: list[int] | np.ndarray, horizon: int, season: int = 1
) -> float:
    """y (N, T) scaled targets -> the MSE of the naive forecast with this season (1: the latest
    value, persistence; S: the same time one season back, within the past) over every origin
    whose look-back and horizon stay inside its segment (what the level model must beat)."""
    bounds = [*map(int, segment_starts), len(y)]
    errors = []
    for a, b in zip(bounds[:-1], bounds[1:], strict=False):
        for h in range(1, horizon + 1):
            lag = season * -(-h // season) - h  # the anchor's lag (train/anchor.py)
            if b - a > h + lag:  # origins t in [a + lag, b - h): truth y[t+h], forecast y[t-lag]
                errors.append((y[a + lag + h : b] - y[a : b - h - lag]) ** 2)
    return float(np.mean(np.concatenate(errors))) if errors else float("inf")


@dataclass(frozen=True)
class PredictChoice:
    chosen: str
    reason: str
    val_mse: dict[str, float]  # level, change (when trained), persistence

    def to_json(self) -> dict[str, Any]:
        return {"chosen": self.chosen, "reason": self.reason, "val_mse": self.val_mse}


def outside_range(train_y: np.ndarray, val_y: np.ndarray) -> float:
    """train_y (N, T), val_y (M, T) -> the largest share, over the targets, of validation values
    outside that target's training range [min, max]."""
    lo, hi = train_y.min(axis=0), train_y.max(axis=0)  # (T,)
    return float(np.max(np.mean((val_y < lo) | (val_y > hi), axis=0)))


def choose_predict(
    train: Callable[[str], Trained],
    naive: dict[str, float],
    can_change: bool,
    seasonal: bool,
    leaves_range: float = 0.0,
) -> tuple[Trained, PredictChoice]:
    """`--predict auto`: train the level model; unless it beats every naive forecast on
    validation by far (MSE under CLEAR_WIN times theirs; `naive`: name -> MSE: a trend, a series
    that leaves its training range and a strong season all keep it close), also train the
    models that forecast the departure from the latest value (change) and, when a season fits
    the window (`seasonal`), from the same time one season back and from a smoothed level and
    season (smooth); keep the lowest validation MSE. One training where levels win clearly, up
    to four where not.

    `leaves_range` (`outside_range`): above LEAVES_RANGE the series is a trend that validation
    has only begun to show. A level model forecasts levels it was trained on; the device would
    run it ever further outside them, so its validation score says little of what comes next:
    the departure models are trained whatever that score, and the best of them is kept."""
    level = train("level")
    scores = {"level": best_val_mse(level[1]), **naive}
    best = min(naive, key=lambda k: naive[k])
    trend = leaves_range > LEAVES_RANGE
    if scores["level"] < CLEAR_WIN * naive[best] and not trend:
        why = f"the level model beats {' and '.join(naive)} on validation by far"
        return level, PredictChoice("level", why, scores)
    if not can_change:
        why = "no target is also a feature, so there is no past value to forecast a change from"
        return level, PredictChoice("level", why, scores)
    short = "does not beat" if scores["level"] >= naive[best] else "is not far ahead of"
    if trend:
        why = f"validation leaves the training range ({leaves_range:.0%} of its values)"
    else:
        why = f"the level model {short} {best} on validation"
    log.warning(
        "%s (level MSE %.4g, %s %.4g): training models that forecast the departure from a "
        "naive forecast as well",
        why,
        scores["level"],
        best,
        naive[best],
    )
    trained = {} if trend else {"level": level}
    for kind in ("change", "seasonal", "smooth") if seasonal else ("change",):
        trained[kind] = train(kind)
        scores[kind] = best_val_mse(trained[kind][1])
    keep = min(trained, key=lambda k: scores[k])
    some = " of the departure models" if trend else ""
    why = f"{why}; {keep} has the lowest validation MSE{some}"
    return trained[keep], PredictChoice(keep, why, scores)


def val_forecasts(model: Any, x: np.ndarray, counted: np.ndarray | None) -> np.ndarray:
    """A Keras model's validation forecasts -> (N, H, C): of a streaming model (x (M, S, F))
    at the positions its loss counts, `counted` (M, S); of a window graph (x (M, L, F)) all."""
    pred = model.predict(x, batch_size=256, verbose=0)  # (M, S, H, C) or (M, H, C)
    return pred if counted is None else pred[counted]


def calibrate_intervals(
    model: Any,
    scales: list[Any],
    x: np.ndarray,
    y: np.ndarray,
    quantiles: tuple[float, ...],
    counted: np.ndarray | None = None,
    origins: int | None = None,
) -> dict[str, Any]:
    """Set the interval `scales` of the graph `model` from its validation forecasts (every graph
    exported afterwards carries them): x, y the validation sequences (M, S, F), (M, S, H, T) with
    `counted` (M, S), or windows (M, L, F), (M, H, T) -> the method, and per quantile the
    validation coverage before and after, and the factors' median and range, for the report.
    `origins`: how many distinct times the forecasts come from (overlapping sequences count a
    time several times; default: every forecast its own), which picks the method."""
    truth = y if counted is None else y[counted]  # (N, H, T)
    n_targets = truth.shape[-1]
    point, bands = split(val_forecasts(model, x, counted), n_targets, len(quantiles))
    n_origins = origins or len(truth)
    per_side = per_side_is_enough(n_origins, quantiles)
    how = calibrate if per_side else calibrate_width
    log.info(
        "intervals calibrated on %d validation origins: %s", n_origins,
        "a factor per side and step" if per_side else "too few for a factor per side: the "
        "width (q and 1 - q share a factor, the steps pooled)",
    )  # fmt: skip
    scale = how(truth, point, bands, quantiles)  # (Q, H, T)
    for k, layer in enumerate(scales):
        layer.factors.assign(scale[k].reshape(-1).astype(np.float32))  # step-major, as the head
    after = split(val_forecasts(model, x, counted), n_targets, len(quantiles))[1]
    targets = [str(j) for j in range(n_targets)]
    was, now = (coverage(truth, b, quantiles, targets) for b in (bands, after))
    report: dict[str, Any] = {
        "method": "per side and step" if per_side else "width",
        "origins": n_origins,
        "quantiles": {
            name: {
                "nominal": q,
                "val_coverage_before": round(was["quantiles"][name]["coverage"], 4),
                "val_coverage_after": round(now["quantiles"][name]["coverage"], 4),
                "factor_median": round(float(np.median(scale[k])), 4),
                "factor_range": [round(float(scale[k].min()), 4), round(float(scale[k].max()), 4)],
            }
            for k, (q, name) in enumerate(zip(quantiles, map(names.name, quantiles), strict=True))
        },
    }
    if "interval" in was:  # the outermost pair's, as the test table gives it
        report["interval"] = {
            "nominal": was["interval"]["nominal"],
            "val_coverage_before": round(was["interval"]["coverage"], 4),
            "val_coverage_after": round(now["interval"]["coverage"], 4),
        }
    return report
