"""Quantile heads: the ordered interval columns in the graph, the pinball loss, and the coverage
report. The output layout (each target's point forecast, then its quantiles) and the names are
edge/quantiles.py's.

Ordering is built into the graph, not repaired afterwards: a quantile below 0.5 is the next one
inward (the point forecast for the innermost) minus a softplus, one above 0.5 the next inward
plus a softplus. Softplus is never negative, so q_1 <= ... <= point <= ... <= q_Q holds for any
weights and any input, in every graph the bundle carries, without a sort on the device (a sort
would also hide a head that learned crossed intervals, and costs on the hot path). Unscaling
multiplies by a positive std and adds a mean, which keeps the order in float arithmetic too.

The point forecast keeps its MSE loss alone: the quantile columns are built on it with its
gradient stopped, and the interval head reads the recurrent features with theirs stopped
(train/models.py), so the pinball loss trains the interval head only and the point forecast is
trained exactly as without quantiles (sharing the recurrent layers cost vic_elec 9% of its MAE).

# B: batch  H: horizon  T: targets  Q: quantiles  C: output columns T * (1 + Q)  M: origins
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from seqcast.edge import quantiles as names


def _softplus(x: Any) -> Any:
    """log(1 + e^x), written with ops every TFLite interpreter has (ABS, EXP, LOG, RELU):
    stable for large |x| and never negative."""
    import keras

    ops = keras.ops
    return ops.relu(x) + ops.log(1.0 + ops.exp(-ops.abs(x)))


def interval_columns(
    point: Any,
    raw: Any,
    quantiles: Sequence[float],
    scales: Sequence[Any] | None = None,
    unit: Any = None,
) -> Any:
    """point (..., H*T) and raw offsets (..., Q*H*T, quantile k's block at k*H*T) ->
    (..., H*T, 1 + Q): per target step, the point forecast then the quantiles, ascending.
    `scales[k]` (a layer, (..., H*T) -> (..., H*T)) multiplies quantile k's step from the next
    one inward by the non-negative factors calibration found on validation (`calibrate`);
    `unit` (H*T,), when given, is the scale the head's steps are in (train/anchor.py's spread:
    a model forecasting departures learns its intervals in their units, as its point)."""
    import keras

    ops = keras.ops
    n = len(quantiles)
    width = raw.shape[-1] // n  # H * T

    def step(k: int) -> Any:
        gap = _softplus(raw[..., k * width : (k + 1) * width])
        gap = gap * unit if unit is not None else gap
        return scales[k](gap) if scales is not None else gap

    base = ops.stop_gradient(point)
    cols: list[Any] = [None] * n
    lower = [k for k, q in enumerate(quantiles) if q < 0.5]
    upper = [k for k, q in enumerate(quantiles) if q > 0.5]
    inner = base
    for k in reversed(lower):  # from the one nearest 0.5 outward
        inner = inner - step(k)
        cols[k] = inner
    inner = base
    for k in upper:
        inner = inner + step(k)
        cols[k] = inner
    return ops.stack([point, *cols], axis=-1)  # -> (..., H*T, 1 + Q)


MAX_SCALE = 50.0  # a factor beyond this means the head learned nothing about that step
# validation forecasts expected beyond the outermost quantile, per horizon step and target, for
# each side and step to get a factor of its own (`calibrate`); fewer: `calibrate_width`
MIN_TAIL = 50


def per_side_is_enough(n_forecasts: int, quantiles: Sequence[float]) -> bool:
    """Whether n validation forecasts per step and target put MIN_TAIL beyond every quantile."""
    tail = min(round(min(q, 1.0 - q), 9) for q in quantiles)  # 1 - 0.9 is 0.0999...98
    return n_forecasts * tail >= MIN_TAIL


def calibrate(
    truth: np.ndarray, point: np.ndarray, bands: np.ndarray, quantiles: Sequence[float]
) -> np.ndarray:
    """Split-conformal scaling of the interval steps, on validation forecasts: truth and point
    (N, H, T), bands (N, H, T, Q) in the order the graph builds them -> factors (Q, H, T), one per
    quantile, horizon step and target, such that on these forecasts a fraction q of the truth
    lies at or below quantile q. Each quantile is calibrated from the point outward on the
    already calibrated one inside it, and a factor is never negative, so the order holds."""
    return _calibrate(truth, point, bands, quantiles, paired=False)


def calibrate_width(
    truth: np.ndarray, point: np.ndarray, bands: np.ndarray, quantiles: Sequence[float]
) -> np.ndarray:
    """`calibrate` for a short validation split: the horizon steps pooled (one factor per
    quantile and target, in each step's own units), and a quantile q and 1 - q share one
    factor, found for the interval between them (conformalized quantile regression), so the
    head keeps the asymmetry it learned on training. A few validation tail values cannot tell
    a skew from the bias of that stretch of time (a trend the validation years have and the
    test years do not), and per-side factors would turn such a bias into a lopsided interval."""
    N, H, T = truth.shape
    pool = [a.reshape(N * H, 1, *a.shape[2:]) for a in (truth, point, bands)]  # (N*H, 1, T...)
    return np.repeat(_calibrate(*pool, quantiles, paired=True), H, axis=1)  # (Q, H, T)


def _calibrate(
    truth: np.ndarray,
    point: np.ndarray,
    bands: np.ndarray,
    quantiles: Sequence[float],
    paired: bool,
) -> np.ndarray:
    """The factors (Q, H, T), from the point outward: quantiles in order of their distance
    from 0.5; with `paired`, q and 1 - q at once for the interval between them."""
    scale = np.ones((len(quantiles), *truth.shape[1:]))
    inner_raw = {-1.0: point, 1.0: point}  # per side: the innermost level so far, as built
    inner = {-1.0: point, 1.0: point}  # and as calibrated

    def reach(k: int, side: float) -> np.ndarray:
        """(N, H, T): how many of quantile k's steps out from the calibrated inner level the
        truth lies (negative inside it)."""
        gap = side * (bands[..., k] - inner_raw[side])  # >= 0 as the graph built it
        with np.errstate(divide="ignore", invalid="ignore"):
            r = side * (truth - inner[side]) / gap
        return np.where(gap > 0, r, np.where(side * (truth - inner[side]) > 0, np.inf, -np.inf))

    def settle(k: int, side: float, factor: np.ndarray) -> None:
        scale[k] = np.clip(np.nan_to_num(factor, posinf=MAX_SCALE), 0.0, MAX_SCALE)
        gap = side * (bands[..., k] - inner_raw[side])
        inner_raw[side], inner[side] = bands[..., k], inner[side] + side * scale[k] * gap

    distance = [round(abs(q - 0.5), 9) for q in quantiles]
    for d in sorted(set(distance)):
        at = {(1.0 if q > 0.5 else -1.0): k for k, q in enumerate(quantiles) if distance[k] == d}
        if paired and len(at) == 2:
            lo, hi = at[-1.0], at[1.0]
            level = quantiles[hi] - quantiles[lo]
            factor = np.quantile(np.maximum(reach(lo, -1.0), reach(hi, 1.0)), level, axis=0,
                                 method="higher")  # fmt: skip
            settle(lo, -1.0, factor)
            settle(hi, 1.0, factor)
            continue
        for side, k in at.items():
            level = quantiles[k] if side > 0 else 1.0 - quantiles[k]
            settle(k, side, np.quantile(reach(k, side), level, axis=0, method="higher"))
    return scale


def pinball(truth: Any, forecast: Any, q: float) -> Any:
    """The quantile (pinball) loss, elementwise: q * e if e >= 0 else (q - 1) * e, e = truth -
    forecast. Its expectation is smallest where `forecast` is the q-quantile of `truth`."""
    import keras

    e = truth - forecast
    return keras.ops.maximum(q * e, (q - 1.0) * e)


def training_loss(quantiles: Sequence[float]) -> Callable[[Any, Any], Any]:
    """y_true (..., H, T), y_pred (..., H, C) -> (..., H): MSE of the point forecasts plus the
    pinball loss of each quantile, averaged over targets (Keras's "mse" reduces the same way, so
    sample weights broadcast as before)."""
    import keras

    ops = keras.ops
    per = 1 + len(quantiles)

    def loss(y_true: Any, y_pred: Any) -> Any:
        total = ops.mean(ops.square(y_true - y_pred[..., 0::per]), axis=-1)
        for k, q in enumerate(quantiles, 1):
            total = total + ops.mean(pinball(y_true, y_pred[..., k::per], q), axis=-1)
        return total

    return loss


def point_mse(quantiles: Sequence[float]) -> Callable[[Any, Any], Any]:
    """The point forecasts' MSE alone, (..., H) like the loss: what early stopping and the
    learning-rate schedule watch with quantiles (as `val_point_mse`), so training runs as long
    as the point forecast improves, as it does without them."""
    import keras

    per = 1 + len(quantiles)

    def point_mse(y_true: Any, y_pred: Any) -> Any:
        return keras.ops.mean(keras.ops.square(y_true - y_pred[..., 0::per]), axis=-1)

    return point_mse


def split(y: np.ndarray, n_targets: int, n_quantiles: int) -> tuple[np.ndarray, np.ndarray]:
    """(..., H, C) -> point forecasts (..., H, T) and quantiles (..., H, T, Q)."""
    grouped = y.reshape(*y.shape[:-1], n_targets, 1 + n_quantiles)  # (..., H, T, 1 + Q)
    return grouped[..., 0], grouped[..., 1:]


def coverage(
    truth: np.ndarray, bands: np.ndarray, quantiles: Sequence[float], target_names: list[str]
) -> dict[str, Any]:
    """truth (M, H, T), bands (M, H, T, Q) in original units -> per quantile the nominal level,
    the fraction of the truth at or below it (all steps and targets, and per target), its mean
    pinball loss; and for the outermost pair the interval's nominal and empirical coverage and
    mean width."""
    below = truth[..., None] <= bands  # (M, H, T, Q)
    out: dict[str, Any] = {"quantiles": {}}
    for k, q in enumerate(quantiles):
        e = truth - bands[..., k]
        out["quantiles"][names.name(q)] = {
            "nominal": q,
            "coverage": round(float(np.mean(below[..., k])), 6),
            "per_target": {
                t: round(float(np.mean(below[:, :, j, k])), 6) for j, t in enumerate(target_names)
            },
            "pinball": float(np.mean(np.maximum(q * e, (q - 1.0) * e))),
        }
    if len(quantiles) >= 2:
        lo, hi = bands[..., 0], bands[..., -1]
        inside = (truth >= lo) & (truth <= hi)
        out["interval"] = {
            "from": names.name(quantiles[0]),
            "to": names.name(quantiles[-1]),
            "nominal": round(quantiles[-1] - quantiles[0], 6),
            "coverage": round(float(np.mean(inside)), 6),
            "mean_width": float(np.mean(hi - lo)),
        }
    return out
