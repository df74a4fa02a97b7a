"""`--predict smooth`: the network forecasts each target's departure from an exponential
smoothing forecast of its level and season (additive Holt-Winters without a trend), computed
inside the graphs as one more recurrent layer with fixed constants, so the device needs nothing
new: the filter's level and seasonal indices are step-graph states like the cells'.

The first season sets the level to its mean and each seasonal index to its sample's departure
from that mean (the classical start, built up online: the ring holds the raw samples until the
season is complete); the trend starts at 0. After it, with n samples having come before v:

    gain_l = max(alpha, 1 / (n + 1))        gain_s = max(gamma, 1 / (n // S + 1))
    e      = v - (level + trend + s)        s: this time's seasonal index, set S steps ago
    level  = level + trend + gain_l * e
    trend  = trend + beta * e
    s      = s + gain_s * (v - level - s)
    forecast of step h = level + h * trend + the seasonal index of that time (the level alone
    before the first season is complete)

The gains start as running means (every season averages in equally) and settle at alpha and
gamma, so the anchor needs no fitted initial state: the window graph (zero state at the
window's first sample) computes what the step graph computes on a stream of that length. It
averages a season over several years where the seasonal anchor reads one observation a year
back, and on a stream it remembers every season it has seen. beta 0 is no trend.

alpha, gamma and beta are chosen on the training split (a grid; the anchor's own MSE over the
positions the training loss counts). The recurrent layers see the one-step surprise e (0 for the
first sample) instead of the target's level.

# B: batch  N: sequence length  F: features  S: season  H: horizon  T: targets  G: grid points
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from seqcast.train.anchor import RING, SEEN, Anchor

LEVEL = "anchor_level"  # step graph state (B, T): the smoothed level
TREND = "anchor_trend"  # step graph state (B, T): the level's change per step
ALPHAS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
GAMMAS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
BETAS = (0.0, 0.01, 0.03, 0.1)
MAX_SEQUENCES = 256  # the choice's sample of the training sequences
GRID_CHUNK = 32  # grid points run at once: memory GRID_CHUNK * M * N * H * T floats

log = logging.getLogger(__name__)


def seen_cap(alpha: float, gamma: float, season: int) -> float:
    """Past this many samples both gains are constant, so the count stops there (it is a
    float32 state: it must not grow without bound)."""
    return float(max(season * (math.ceil(1 / gamma) + 1), math.ceil(1 / alpha) + 1))


def run_filter(
    v: np.ndarray,
    alpha: np.ndarray,
    gamma: np.ndarray,
    season: int,
    horizon: int,
    beta: np.ndarray | float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """The numpy reference: v (..., N, T) from zero state, alpha, gamma and beta broadcastable
    to v[..., 0, :] -> the forecasts after every sample (..., N, H, T) and the one-step surprise
    of every sample (..., N, T; 0 for the first)."""
    S = season
    lead = v.shape[:-2] + v.shape[-1:]  # (..., T)
    level, trend = np.zeros(lead), np.zeros(lead)
    ring = np.zeros((S, *lead))  # ring[k]: the index of the time k + 1 steps after the latest
    base = np.zeros((*v.shape[:-1], horizon, v.shape[-1]))  # (..., N, H, T)
    surprise = np.zeros(v.shape)
    for n in range(v.shape[-2]):
        x = v[..., n, :]
        if n < S:  # the first season: a running mean, the raw samples kept
            e = x - level
            level = level + e / (n + 1)
            ring = np.concatenate([ring[1:], x[None]])
            if n == S - 1:
                ring = ring - level
        else:
            gain_s = np.maximum(gamma, 1.0 / (n // S + 1))
            e = x - level - trend - ring[0]
            level = level + trend + np.maximum(alpha, 1.0 / (n + 1)) * e
            trend = trend + beta * e
            ring = np.concatenate([ring[1:], (ring[0] + gain_s * (x - level - ring[0]))[None]])
        surprise[..., n, :] = e if n else 0.0
        for h in range(horizon):
            base[..., n, h, :] = level + (h + 1) * trend + (ring[h % S] if n >= S - 1 else 0.0)
    return base, surprise


@dataclass(frozen=True)
class SmoothingChoice:
    alpha: float
    gamma: float
    beta: float
    mse: float  # the anchor's own MSE on training (scaled units)
    spread: tuple[float, ...]  # per target: the std of the one-step surprise on training


def choose(v: np.ndarray, y: np.ndarray, weight: np.ndarray, season: int) -> SmoothingChoice:
    """v (M, N, T) the targets' values in the training sequences (or windows), y (M, N, H, T)
    their futures, weight (M, N) where the loss counts -> the grid's alpha, gamma and beta with
    the lowest anchor MSE there (the first of equals: the slowest, trend-free)."""
    H, T = y.shape[2], y.shape[3]
    grid = [(a, g, b) for b in BETAS for a in ALPHAS for g in GAMMAS]
    w = weight[None, :, :, None, None]  # (1, M, N, 1, 1)
    mse = np.empty(len(grid))
    for i in range(0, len(grid), GRID_CHUNK):
        chunk = grid[i : i + GRID_CHUNK]
        a, g, b = (np.array(col)[:, None, None] for col in zip(*chunk, strict=True))
        vg = np.broadcast_to(v, (len(a), *v.shape))  # (G, M, N, T): G grid points at once
        base, _ = run_filter(vg, a, g, season, H, b)  # (G, M, N, H, T)
        mse[i : i + len(a)] = ((base - y[None]) ** 2 * w).sum(axis=(1, 2, 3, 4))
    mse /= max(float(w.sum()) * H * T, 1.0)
    alpha, gamma, beta = grid[int(np.argmin(mse))]
    _, surprise = run_filter(v, np.array(alpha), np.array(gamma), season, H, beta)
    counted = (weight > 0) & (np.arange(v.shape[1]) >= season)[None, :]  # (M, N)
    std = surprise[counted].std(axis=0) if counted.any() else np.ones(T)  # (T,)
    spread = tuple(float(s) if s > 1e-6 else 1.0 for s in std)
    return SmoothingChoice(alpha, gamma, beta, float(mse.min()), spread)


@dataclass(frozen=True)
class SmoothedAnchor(Anchor):
    """An `Anchor` whose values come from the smoothing filter instead of a lag."""

    alpha: float = 0.2
    gamma: float = 0.2
    beta: float = 0.0

    def constants(self) -> dict[str, float]:
        """For the manifest."""
        return {"alpha": self.alpha, "gamma": self.gamma, "beta": self.beta}

    def states(self) -> list[tuple[str, int]]:
        T = self.n_targets
        return [(RING, self.season * T), (LEVEL, T), (TREND, T), (SEEN, 1)]

    def _step(self, raw_x: Any, states: dict[str, Any], horizon: int) -> tuple[Any, Any, dict]:
        """One sample x (B, F) -> the surprise in spread units (B, T), the forecasts (B, H*T)
        and the next states; a masked sample (left padding) changes nothing."""
        import keras

        from seqcast.train.options import MASK_VALUE

        ops = keras.ops
        T, S = self.n_targets, self.season
        ring, level, trend = states[RING], states[LEVEL], states[TREND]  # (B, S*T), (B, T) x2
        seen = states[SEEN]  # (B, 1)
        real = ops.cast(ops.not_equal(raw_x[:, :1], MASK_VALUE), "float32")  # (B, 1)
        v = self.values(raw_x)  # (B, T)
        warm = ops.cast(ops.greater_equal(seen, float(S)), "float32")  # (B, 1): a season seen
        closing = ops.cast(ops.equal(seen, float(S - 1)), "float32")  # (B, 1): its last sample
        running = 1.0 / (seen + 1.0)
        gain_l = warm * ops.maximum(self.alpha, running) + (1.0 - warm) * running
        # seasons seen: seen is a whole number, so + 0.5 keeps the floor right when the
        # converter divides by multiplying with a rounded 1/S (a float16 1/12 is 0.08331)
        gain_s = ops.maximum(self.gamma, 1.0 / (ops.floor((seen + 0.5) / S) + 1.0))
        s = ring[:, :T]  # (B, T): this time's index (its raw sample in the first season)
        e = v - level - warm * (trend + s)
        new_level = level + warm * trend + gain_l * e
        new_trend = trend + warm * self.beta * e
        entry = warm * (s + gain_s * (v - new_level - s)) + (1.0 - warm) * v
        new_ring = ops.concatenate([ring[:, T:], entry], axis=-1)  # (B, S*T)
        new_ring = new_ring - closing * ops.tile(new_level, (1, S))  # raw -> departures
        new_seen = ops.minimum(seen + 1.0, seen_cap(self.alpha, self.gamma, S))
        nxt = {
            RING: real * new_ring + (1.0 - real) * ring,
            LEVEL: real * new_level + (1.0 - real) * level,
            TREND: real * new_trend + (1.0 - real) * trend,
            SEEN: real * new_seen + (1.0 - real) * seen,
        }
        surprise = e * ops.cast(ops.greater(seen, 0.0), "float32") * real / self._spread()
        indexed = ops.cast(ops.greater_equal(nxt[SEEN], float(S)), "float32")  # (B, 1)
        ring_now = nxt[RING] * indexed
        picked = [
            nxt[LEVEL] + (h + 1) * nxt[TREND] + ring_now[:, (h % S) * T : (h % S + 1) * T]
            for h in range(horizon)
        ]
        return surprise, ops.concatenate(picked, axis=-1), nxt

    def _scan(self, x: Any, horizon: int, unroll: bool = False) -> Any:
        """x (B, N, F) -> per sample the surprise and the forecasts (B, N, T + H*T)."""
        import keras

        cell = _cell_class()(self, horizon)
        layer = keras.layers.RNN(cell, return_sequences=True, unroll=unroll)
        return layer(x)

    # the graphs ask for the cells' input and the anchor together (`sequence`, `window`): one
    # pass of the filter gives both; the single uses below are those passes' halves
    def inputs(self, x: Any, masked: bool = False) -> Any:
        if x.shape[1] is None:
            return self.sequence(x, 1)[0]
        return self.window(x, 1, masked)[0]

    def over_sequence(self, x: Any, horizon: int) -> Any:
        return self.sequence(x, horizon)[1]  # (B, N, H*T)

    def over_window(self, x: Any, horizon: int, masked: bool = False) -> Any:
        return self.window(x, horizon, masked)[1]  # (B, H*T)

    def sequence(self, x: Any, horizon: int) -> tuple[Any, Any]:
        out = self._scan(x, horizon)  # (B, N, T + H*T)
        return self._cells_see(x, out, False), out[..., self.n_targets :]

    def window(self, x: Any, horizon: int, masked: bool = False) -> tuple[Any, Any]:
        if not masked:
            return self._full_window(x, horizon)
        out = self._scan(x, horizon, unroll=True)  # (B, L, T + H*T)
        return self._cells_see(x, out, masked), out[:, -1, self.n_targets :]

    def _full_window(self, x: Any, horizon: int) -> tuple[Any, Any]:
        """`window` without left padding, unrolled in Python: every sample's count is known when
        the graph is built, so the gains are constants, the first season's branches are taken
        here and the ring is a list of tensors (a fraction of the cell's ops per sample: the
        graph is smaller and converts several times faster)."""
        import keras

        ops = keras.ops
        S, length = self.season, x.shape[1]
        v = self.values(x)  # (B, L, T)
        level = ops.zeros_like(v[:, 0])  # (B, T)
        trend = None  # beta 0: no trend
        ring: list[Any] = []  # the indices of the next S times, the next first (B, T) each
        surprise = [level]  # the first sample has none
        for n in range(length):
            x_n = v[:, n]
            if n < S:  # the first season: a running mean, the raw samples kept
                e = x_n - level
                level = level + e * (1.0 / (n + 1))
                ring.append(x_n)
                if n == S - 1:
                    ring = [r - level for r in ring]
            else:
                s = ring.pop(0)
                expected = level + trend if trend is not None else level
                e = x_n - expected - s
                level = expected + max(self.alpha, 1.0 / (n + 1)) * e
                if self.beta:
                    trend = (trend if trend is not None else 0.0) + self.beta * e
                ring.append(s + max(self.gamma, 1.0 / (n // S + 1)) * (x_n - level - s))
            if n:
                surprise.append(e)
        d = ops.stack(surprise, axis=1) / self._spread()  # (B, L, T)
        steps = []
        for h in range(horizon):
            f = level + (h + 1) * trend if trend is not None else level
            steps.append(f + ring[h % S] if length >= S else f)
        return self._with_departures(x, d), ops.concatenate(steps, axis=-1)  # (B, H*T)

    def _cells_see(self, x: Any, scanned: Any, masked: bool) -> Any:
        """x (B, N, F) and the scan's output (B, N, T + ...) -> x with each target column
        replaced by its surprise; left padding stays the mask value when `masked`."""
        import keras

        from seqcast.train.options import MASK_VALUE

        out = self._with_departures(x, scanned[..., : self.n_targets])  # (B, N, F)
        return keras.ops.where(keras.ops.equal(x, MASK_VALUE), MASK_VALUE, out) if masked else out

    def step(self, x: Any, states: dict[str, Any], horizon: int) -> tuple[Any, Any, dict]:
        d, base, nxt = self._step(x, states, horizon)
        return self._with_departures(x, d), base, nxt


def smoothed_anchor(
    anchor: Anchor, x: np.ndarray, y: np.ndarray, weight: np.ndarray | None
) -> SmoothedAnchor:
    """The training data as the model gets it -- sequences x (M, N, F), y (M, N, H, T), weight
    (M, N); or windows x (M, L, F), y (M, H, T), weight None (their last position counts) --
    -> `anchor` (its targets' columns and season) smoothed with the constants `choose` picks
    on at most MAX_SEQUENCES of them, evenly spread."""
    if weight is None:
        M, L = x.shape[:2]
        y_seq = np.zeros((M, L, *y.shape[1:]), y.dtype)  # (M, L, H, T)
        y_seq[:, -1] = y
        weight = np.zeros((M, L), np.float32)
        weight[:, -1] = 1.0
        y = y_seq
    pick = np.unique(np.linspace(0, len(x) - 1, min(len(x), MAX_SEQUENCES)).astype(int))
    # Anchor.values in numpy and float64 (the graphs' version is float32 Keras ops): the grid's
    # MSEs are compared in float64, as for the benchmark figures
    v = x[pick][..., list(anchor.feature)] * np.array(anchor.scale) + np.array(anchor.offset)
    c = choose(v.astype(np.float64), y[pick].astype(np.float64), weight[pick], anchor.season)
    log.info(
        "--predict smooth: alpha %g, gamma %g, beta %g (season %d; the anchor's training MSE "
        "%.4g)", c.alpha, c.gamma, c.beta, anchor.season, c.mse,
    )  # fmt: skip
    return SmoothedAnchor(anchor.feature, anchor.scale, anchor.offset, anchor.season, c.spread,
                          c.alpha, c.gamma, c.beta)  # fmt: skip


@functools.cache
def _cell_class() -> Any:
    import keras

    class Cell(keras.layers.Layer):  # type: ignore[misc]
        """The filter as an RNN cell: input x (B, F), output surprise and forecasts."""

        def __init__(self, anchor: SmoothedAnchor, horizon: int, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.anchor, self.horizon = anchor, horizon
            self.names = [n for n, _ in anchor.states()]
            self.state_size = [size for _, size in anchor.states()]
            self.output_size = anchor.n_targets * (1 + horizon)

        def call(self, x: Any, states: list[Any]) -> tuple[Any, list[Any]]:
            import keras

            named = dict(zip(self.names, states, strict=True))
            d, base, nxt = self.anchor._step(x, named, self.horizon)
            return keras.ops.concatenate([d, base], axis=-1), [nxt[n] for n in self.names]

    return Cell
