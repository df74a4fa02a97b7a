"""Keras forecasters and the two inference graphs exported from them.

Streaming architectures (a unidirectional LSTM/GRU stack) are trained sequence-to-sequence: the
stack runs over long sequences from zero state and a dense head forecasts H steps after every
step. The window graph (`window.tflite`) and the step graph (`step.tflite`) both reuse the trained
layers' weights, so they compute the same function two ways.

Window-only architectures (`conv1d`, `bidirectional`) are trained on windows directly.

With quantiles (train/quantiles.py) a second dense head on the same recurrent features (not
trained through them) gives the interval offsets and every graph outputs C = T * (1 + Q)
columns per step instead of T (edge/quantiles.py's layout).

# B: batch  L: seq_len  S: training sequence length  F: features  U: units  H: horizon  T: targets
# Q: quantiles  C: output columns T * (1 + Q)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
import tensorflow as tf

from seqcast.train.anchor import Anchor

# re-exported: these used to live here and are imported from here
from seqcast.train.options import MASK_VALUE as MASK_VALUE
from seqcast.train.options import Architecture as Architecture
from seqcast.train.options import ArchitectureError as ArchitectureError
from seqcast.train.quantiles import interval_columns


def _rnn(arch: Architecture, units: int, return_sequences: bool, unroll: bool = False) -> Any:
    layer_cls = keras.layers.LSTM if arch.cell == "lstm" else keras.layers.GRU
    return layer_cls(
        units,
        return_sequences=return_sequences,
        dropout=arch.dropout,
        recurrent_dropout=arch.recurrent_dropout,
        unroll=unroll,
    )


@dataclass
class Forecaster:
    """The trained Keras model plus handles to the layers the export graphs reuse."""

    arch: Architecture
    n_features: int
    horizon: int
    n_targets: int
    model: Any  # keras.Model, set by build()
    rnns: list[Any]
    head: Any
    quantiles: tuple[float, ...] = ()
    interval_head: Any = None  # Dense (Q * H * T) offsets, with quantiles
    interval_scales: list[Any] | None = None  # per quantile an IntervalScale, set by calibration
    # a streaming model's window graph sees exactly seq_len steps from zero state, a position its
    # intervals were not calibrated at: it gets its own scales (`window_model`)
    window_scales: list[Any] | None = None
    anchor: Anchor | None = None  # --predict change/seasonal: the head forecasts departures from it

    @property
    def columns(self) -> int:
        """C: output columns per step."""
        return self.n_targets * (1 + len(self.quantiles))

    def outputs(self, h: Any, base: Any, scales: list[Any] | None = None) -> Any:
        """Last hidden state (..., U) and the anchor's values (..., H*T) or None
        (train/anchor.py) ->
        flat outputs (..., H*T), or (..., H*T, 1 + Q) with quantiles: reshape to (..., H, C)
        either way. `scales`: the interval scales to use instead of `interval_scales`."""
        point = self.head(h)
        unit = None
        if self.anchor is not None:  # the heads forecast departures in the anchor's spread
            unit = self.anchor.head_scale(self.horizon)  # (H*T,)
            point = point * unit + base
        if not self.quantiles:
            return point
        # the intervals read the recurrent features without training them: the layers and the
        # point head learn from the point forecasts' MSE alone, as without quantiles
        raw = self.interval_head(keras.ops.stop_gradient(h))
        scales = scales if scales is not None else self.interval_scales
        return interval_columns(point, raw, self.quantiles, scales, unit)


def build(
    arch: Architecture,
    n_features: int,
    horizon: int,
    n_targets: int,
    seq_len: int,
    quantiles: tuple[float, ...] = (),
    anchor: Anchor | None = None,
) -> Forecaster:
    out_dim = horizon * n_targets
    head = keras.layers.Dense(out_dim, name="head")
    f = Forecaster(arch, n_features, horizon, n_targets, None, [], head, quantiles, anchor=anchor)
    C = f.columns
    if arch.streaming:
        inp = keras.Input((None, n_features), name="x")  # (B, S, F)
        # the cells' input (B, S, F) and the anchor after every position (B, S, H*T)
        h, base = anchor.sequence(inp, horizon) if anchor is not None else (inp, None)
        rnns = []
        for u in arch.units:
            layer = _rnn(arch, u, return_sequences=True)
            rnns.append(layer)
            h = layer(h)  # -> (B, S, U)
        f.interval_head, f.interval_scales = _interval_head(out_dim, quantiles)
        y = keras.layers.Reshape((-1, horizon, C))(f.outputs(h, base))  # -> (B, S, H, C)
    else:
        inp = keras.Input((seq_len, n_features), name="x")  # (B, L, F)
        # the cells' input (B, L, F) and the anchor after the last sample (B, H*T)
        h, base = anchor.window(inp, horizon) if anchor is not None else (inp, None)
        if arch.conv1d:
            h = keras.layers.Conv1D(32, 3, padding="causal", activation="relu")(h)  # -> (B, L, 32)
            h = keras.layers.MaxPooling1D(2, padding="same")(h)  # -> (B, ceil(L/2), 32)
        rnns = []
        for i, u in enumerate(arch.units):
            layer = _rnn(arch, u, return_sequences=i < len(arch.units) - 1, unroll=True)
            if arch.bidirectional:
                layer = keras.layers.Bidirectional(layer)
            rnns.append(layer)
            h = layer(h)  # -> (B, L', U) or (B, U) for the last layer
        f.interval_head, f.interval_scales = _interval_head(out_dim, quantiles)
        y = keras.layers.Reshape((horizon, C))(f.outputs(h, base))  # -> (B, H, C)
    f.model, f.rnns = keras.Model(inp, y), rnns
    return f


class IntervalScale(keras.layers.Layer):
    """(..., H*T) -> the same times fixed factors: ones while training, then the calibration's
    (train/quantiles.py `calibrate`), so every graph exported afterwards carries them."""

    def __init__(self, width: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.factors = self.add_weight(shape=(width,), initializer="ones", trainable=False)

    def call(self, x: Any) -> Any:
        return x * self.factors


def _interval_head(out_dim: int, quantiles: tuple[float, ...]) -> tuple[Any, list[Any] | None]:
    """Made after the recurrent layers: a layer draws its initial weights' seed when it is
    made, so the recurrent layers start as they would without quantiles (and train the same)."""
    if not quantiles:
        return None, None
    return keras.layers.Dense(out_dim * len(quantiles), name="interval_head"), _scales(
        out_dim, len(quantiles), "interval_scale"
    )


def _scales(width: int, n: int, prefix: str) -> list[IntervalScale]:
    return [IntervalScale(width, name=f"{prefix}{k}") for k in range(n)]


def state_names(f: Forecaster) -> list[tuple[str, int]]:
    """(name, size) of each recurrent state tensor, in step-model order: the cells', then a
    departure anchor's (train/anchor.py)."""
    kinds = ("h", "c") if f.arch.cell == "lstm" else ("h",)
    names = [(f"layer{i}_{k}", layer.units) for i, layer in enumerate(f.rnns) for k in kinds]
    return names + (f.anchor.states() if f.anchor is not None else [])


def step_fn(f: Forecaster) -> Any:
    """One time step with explicit state, reusing the trained cells' weights."""
    kinds = ("h", "c") if f.arch.cell == "lstm" else ("h",)

    def step(inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        x = h = inputs["x"]  # (B, F)
        out: dict[str, tf.Tensor] = {}
        base = None
        if f.anchor is not None:  # the cells see departures; base: the anchor (B, H*T)
            kept = {name: inputs[name] for name, _ in f.anchor.states()}
            h, base, nxt = f.anchor.step(x, kept, f.horizon)
            out.update(nxt)
        for i, layer in enumerate(f.rnns):
            states = [inputs[f"layer{i}_{k}"] for k in kinds]  # each (B, U)
            h, new = layer.cell(h, states, training=False)  # -> (B, U)
            for k, s in zip(kinds, new, strict=True):
                out[f"layer{i}_{k}"] = s
        out["y"] = tf.reshape(f.outputs(h, base), [-1, f.horizon, f.columns])  # -> (B, H, C)
        return out

    return step


def step_signature(f: Forecaster) -> list[tf.TensorSpec]:
    specs = [tf.TensorSpec([None, f.n_features], tf.float32, name="x")]
    specs += [tf.TensorSpec([None, size], tf.float32, name=n) for n, size in state_names(f)]
    return specs


def window_model(f: Forecaster, seq_len: int, masked: bool) -> keras.Model:
    """(B, L, F) -> (B, H, C). Streaming stacks are rebuilt unrolled with shared weights (Keras
    sequence layers otherwise lower to WHILE loops); `masked` skips left padding equal to
    MASK_VALUE, which is the same as starting from zero state at the first real sample. With
    quantiles the graph gets its own interval scales, `f.window_scales` (ones: calibrate them on
    validation windows, train/validation.py `calibrate_intervals`)."""
    if not f.arch.streaming:
        return f.model
    inp = keras.Input((seq_len, f.n_features), name="x")
    # padding stays masked in the cells' input (B, L, F); the anchor after the last sample (B, H*T)
    h, base = f.anchor.window(inp, f.horizon, masked) if f.anchor is not None else (inp, None)
    h = keras.layers.Masking(mask_value=MASK_VALUE)(h) if masked else h
    for i, trained in enumerate(f.rnns):
        layer = _rnn(f.arch, trained.units, return_sequences=i < len(f.rnns) - 1, unroll=True)
        h = layer(h)  # -> (B, L, U) or (B, U)
        layer.set_weights(trained.get_weights())
    if f.quantiles:
        f.window_scales = _scales(f.horizon * f.n_targets, len(f.quantiles), "window_scale")
    out = f.outputs(h, base, f.window_scales)
    y = keras.layers.Reshape((f.horizon, f.columns))(out)  # -> (B, H, C)
    return keras.Model(inp, y)
