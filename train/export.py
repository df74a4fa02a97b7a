"""Keras -> SavedModel (ExportArchive) -> TFLite with built-in ops only, at a chosen precision.

`from_concrete_functions([...], keras_model)` silently yields NaN weights with Keras 3, so every
graph goes through `keras.export.ExportArchive` and `TFLiteConverter.from_saved_model`.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from seqcast.train.models import Forecaster, state_names, step_fn, step_signature

log = logging.getLogger(__name__)

QUANTIZATIONS = ("float32", "float16", "dynamic", "int8")
Representative = Callable[[], Iterator[dict[str, np.ndarray]]]


def _convert(
    track: list[Any],
    fn: Callable[..., dict[str, tf.Tensor]],
    specs: list[tf.TensorSpec],
    quantization: str,
    representative: Representative | None,
) -> bytes:
    if quantization not in QUANTIZATIONS:
        raise ValueError(
            f"--quantize: choose one of {', '.join(QUANTIZATIONS)}, got {quantization!r}"
        )
    with tempfile.TemporaryDirectory(prefix="seqcast-export-") as tmp:
        archive = keras.export.ExportArchive()
        for obj in track:
            archive.track(obj)
        archive.add_endpoint(name="serve", fn=fn, input_signature=specs)
        archive.write_out(str(Path(tmp) / "saved"), verbose=False)
        conv = tf.lite.TFLiteConverter.from_saved_model(str(Path(tmp) / "saved"))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if quantization != "float32":
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantization == "float16":
            conv.target_spec.supported_types = [tf.float16]
        if quantization == "int8":
            if representative is None:
                raise ValueError("int8 quantization needs representative data")
            conv.representative_dataset = representative
        return bytes(conv.convert())


def convert_window(
    window: keras.Model, f: Forecaster, seq_len: int, quantization: str, rep_x: np.ndarray
) -> bytes:
    """window.tflite: x (B, L, F) -> y (B, H, T), scaled units."""
    spec = [tf.TensorSpec([None, seq_len, f.n_features], tf.float32, name="x")]

    def rep() -> Iterator[dict[str, np.ndarray]]:
        for i in range(len(rep_x)):
            yield {"x": rep_x[i : i + 1]}

    return _convert([window], lambda x: {"y": window(x, training=False)}, spec, quantization, rep)


def convert_step(
    f: Forecaster, quantization: str, rep_inputs: list[dict[str, np.ndarray]]
) -> bytes:
    """step.tflite: (x (B, F), state...) -> (y (B, H, T), state...), scaled units."""
    step = step_fn(f)
    names = ["x"] + [n for n, _ in state_names(f)]

    def fn(*args: tf.Tensor) -> dict[str, tf.Tensor]:
        return step(dict(zip(names, args, strict=True)))

    def rep() -> Iterator[dict[str, np.ndarray]]:
        yield from rep_inputs

    return _convert([f.model], fn, step_signature(f), quantization, rep)


def keras_step_run(f: Forecaster, x: np.ndarray) -> tuple[np.ndarray, list[dict[str, np.ndarray]]]:
    """Step the Keras cells over x (B, S, F) from zero state.

    Returns y (B, S, H, T) and the step inputs seen at each step (representative data for int8).
    """
    step = tf.function(step_fn(f))
    b = x.shape[0]
    state = {n: np.zeros((b, size), np.float32) for n, size in state_names(f)}
    ys, seen = [], []
    for t in range(x.shape[1]):
        inputs = {"x": x[:, t].astype(np.float32), **state}
        seen.append(inputs)
        out = {k: v.numpy() for k, v in step(inputs).items()}
        ys.append(out.pop("y"))
        state = out
    return np.stack(ys, axis=1), seen
