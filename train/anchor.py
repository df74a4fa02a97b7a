"""`--predict change` and `--predict seasonal`: the network forecasts each target's departure
from a naive anchor, computed inside the graphs, so the bundle still outputs levels and the
device needs nothing new.

The anchor of step h is the target's value `lag(h)` steps before the latest sample, with
lag(h) = season * ceil(h / season) - h: season 1 is the latest value (`change`, persistence), a
season S is the same time one season back (`seasonal`, seasonal naive). A zero head output is
therefore exactly that naive forecast.

The value is read from the model's input: a target that is also a feature is, in scaled target
units, `x[feature] * scale + offset` (scale = feature std / target std, offset = (feature mean -
target mean) / target std). Before a stream has `lag` samples (the start of a training
sequence, zero state on the device) the anchor is 0, the target's mean.

The recurrent layers see that input column as a departure too: v[t] - v[t - S] (0 until the
stream has S samples), not the level. A level outside the training range (a trend) would drive
them where they were never trained; its seasonal difference stays in range.

The step graph carries the last S values as one more recurrent state (`anchor_ring`) and how
many it holds, up to S (`anchor_seen`), so the device keeps them per stream like the cells'
states.

# B: batch  S: training sequence length  L: seq_len  F: inputs  H: horizon  T: targets
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

RING = "anchor_ring"  # step graph state (B, S*T): the last S values, oldest first
SEEN = "anchor_seen"  # step graph state (B, 1): how many of them the stream has had, up to S


@dataclass(frozen=True)
class Anchor:
    feature: tuple[int, ...]  # per target: its column in x (0 when it is not a feature)
    scale: tuple[float, ...]  # 0 for a target that is not a feature: its change is its level
    offset: tuple[float, ...]
    season: int = 1  # 1: the latest value; S: the same time one season back
    # per target: the spread (std) of v[t] - v[t - S] in training; the cells see departures
    # and the head forecasts them in these units, about 1 however small the departures are
    spread: tuple[float, ...] | None = None

    def _spread(self) -> np.ndarray:
        return np.array(self.spread or [1.0] * self.n_targets, np.float32)  # (T,)

    def head_scale(self, horizon: int) -> np.ndarray:
        """(H*T,): the head's output times this is the departure in target units."""
        return np.tile(self._spread(), horizon)

    @property
    def n_targets(self) -> int:
        return len(self.feature)

    def states(self) -> list[tuple[str, int]]:
        """(name, size) of the step graph's anchor states."""
        return [(RING, self.season * self.n_targets), (SEEN, 1)]

    def _placement(self) -> tuple[np.ndarray, np.ndarray]:
        """-> P (T, F) putting each target that is a feature into its column, and keep (F,):
        1 for the columns the departures leave alone."""
        F = max(self.feature) + 1
        P = np.zeros((self.n_targets, F), np.float32)
        for j, (i, sc) in enumerate(zip(self.feature, self.scale, strict=True)):
            if sc != 0.0:
                P[j, i] = 1.0
        return P, 1.0 - P.sum(axis=0)

    def _with_departures(self, x: Any, d: Any) -> Any:
        """x (..., F), departures d (..., T) -> x with each target column replaced by its d."""
        import keras

        P, keep = self._placement()
        n_features = x.shape[-1]
        P = np.pad(P, ((0, 0), (0, n_features - P.shape[1])))  # (T, F)
        keep = np.pad(keep, (0, n_features - keep.shape[0]), constant_values=1.0)  # (F,)
        return x * keep + keras.ops.matmul(d, P)

    def lags(self, horizon: int) -> list[int]:
        """Per step h = 1..H: how many steps before the latest sample its anchor lies."""
        s = self.season
        return [s * -(-h // s) - h for h in range(1, horizon + 1)]

    def values(self, x: Any, masked: bool = False) -> Any:
        """x (..., F) -> each target's value in scaled target units (..., T); with `masked`,
        0 where x is left padding (the mask value), as on a stream that has not started."""
        import keras

        from seqcast.train.options import MASK_VALUE

        ops = keras.ops
        raw = ops.take(x, np.array(self.feature, np.int32), axis=-1)  # (..., T)
        v = raw * np.array(self.scale, np.float32) + np.array(self.offset, np.float32)
        return ops.where(ops.equal(raw, MASK_VALUE), 0.0, v) if masked else v

    def inputs(self, x: Any, masked: bool = False) -> Any:
        """x (B, N, F) -> what the recurrent layers see (B, N, F): each target column as its
        departure v[t] - v[t - S], 0 where the stream does not have v[t - S] yet (the start of
        the sequence, or left padding when `masked`: padded rows stay the mask value)."""
        import keras

        from seqcast.train.options import MASK_VALUE

        ops = keras.ops
        raw = ops.take(x, np.array(self.feature, np.int32), axis=-1)  # (B, N, T)
        v = self.values(x)  # (B, N, T)
        real = ops.cast(ops.not_equal(raw, MASK_VALUE), "float32") if masked else ops.ones_like(v)
        valid = _later(real, self.season) * real  # (B, N, T): v[t - S] exists
        d = (v - _later(v, self.season)) * valid / self._spread()
        out = self._with_departures(x, d)
        return ops.where(ops.equal(x, MASK_VALUE), MASK_VALUE, out) if masked else out

    def over_sequence(self, x: Any, horizon: int) -> Any:
        """x (B, S, F) -> the anchor after every position (B, S, H*T), zero before a lag's
        first sample (a training sequence starts from zero state, as a stream does)."""
        import keras

        ops = keras.ops
        v = self.values(x)  # (B, S, T)
        return ops.concatenate([_later(v, lag) for lag in self.lags(horizon)], axis=-1)

    def over_window(self, x: Any, horizon: int, masked: bool = False) -> Any:
        """x (B, L, F) -> the anchor after the window's last sample (B, H*T)."""
        import keras

        v = self.values(x, masked)  # (B, L, T)
        length = x.shape[1]
        if self.season > length:
            raise ValueError(f"season {self.season} does not fit in a window of {length}")
        return keras.ops.concatenate([v[:, length - 1 - lag] for lag in self.lags(horizon)], -1)

    def sequence(self, x: Any, horizon: int) -> tuple[Any, Any]:
        """x (B, S, F) -> what the recurrent layers see (`inputs`) and the anchor after every
        position (`over_sequence`): the training graph's two uses, which a subclass may compute
        in one pass."""
        return self.inputs(x), self.over_sequence(x, horizon)

    def window(self, x: Any, horizon: int, masked: bool = False) -> tuple[Any, Any]:
        """x (B, L, F) -> what the recurrent layers see (`inputs`) and the anchor after the
        last sample (`over_window`): the window graph's two uses."""
        return self.inputs(x, masked), self.over_window(x, horizon, masked)

    def step(self, x: Any, states: dict[str, Any], horizon: int) -> tuple[Any, Any, dict]:
        """One sample: x (B, F) and the anchor's states (`states()`: ring (B, S*T), seen
        (B, 1)) -> the recurrent layers' input (B, F), the anchor (B, H*T), the next states."""
        import keras

        ops = keras.ops
        ring, seen = states[RING], states[SEEN]
        T, S = self.n_targets, self.season
        v = self.values(x)  # (B, T)
        full = ops.cast(ops.greater_equal(seen, float(S)), "float32")  # (B, 1): v[t - S] exists
        d = (v - ring[:, :T]) * full / self._spread()  # ring[:, :T] is v[t - S]
        last = ops.concatenate([ring[:, T:], v], axis=-1)  # (B, S*T): v[t-S+1] .. v[t]
        end = S * T
        picked = [last[:, end - (lag + 1) * T : end - lag * T] for lag in self.lags(horizon)]
        nxt = ops.minimum(seen + 1.0, float(S))
        anchor = ops.concatenate(picked, axis=-1)
        return self._with_departures(x, d), anchor, {RING: last, SEEN: nxt}


def _later(v: Any, lag: int) -> Any:
    """v (B, N, T) -> v lag steps later: out[:, t] = v[:, t - lag], zeros before (B, N, T)."""
    import keras

    if lag == 0:
        return v
    ops = keras.ops
    pad = ops.zeros_like(v[:, :lag])  # (B, lag, T), fewer on a shorter sequence
    return ops.concatenate([pad, v[:, :-lag]], axis=1)


def anchor_for(
    feature_names: list[str],
    target_names: list[str],
    feature_mean: np.ndarray,
    feature_std: np.ndarray,
    target_mean: np.ndarray,
    target_std: np.ndarray,
    season: int = 1,
    train_targets: np.ndarray | None = None,
    segment_starts: list[int] | np.ndarray = (0,),
) -> Anchor:
    """The anchor of each target; `train_targets` (N, T) scaled training targets give the
    departures' spread (their std within segments; 1 without them)."""
    feature, scale, offset = [], [], []
    for j, name in enumerate(target_names):
        if name in feature_names:
            i = feature_names.index(name)
            feature.append(i)
            scale.append(float(feature_std[i] / target_std[j]))
            offset.append(float((feature_mean[i] - target_mean[j]) / target_std[j]))
        else:
            feature.append(0)
            scale.append(0.0)
            offset.append(0.0)
    spread = None
    if train_targets is not None:
        bounds = [*map(int, segment_starts), len(train_targets)]
        d = [train_targets[a + season : b] - train_targets[a : b - season]
             for a, b in zip(bounds[:-1], bounds[1:], strict=False) if b - a > season]  # fmt: skip
        std = np.concatenate(d).std(axis=0) if d else np.ones(len(target_names))
        # a target that is no feature has no anchor: its head forecasts its level, as without
        spread = tuple(
            float(v) if v > 1e-6 and sc != 0.0 else 1.0 for v, sc in zip(std, scale, strict=True)
        )
    return Anchor(tuple(feature), tuple(scale), tuple(offset), season, spread)
