"""Train one candidate and measure it as `sweep` and `auto` compare them: validation MAE on the
common origins beside the naive baselines, bundle size, and batch-1 inference cost.

Validation MAE is scored on the origins every candidate can forecast (validation steps t with
the longest candidate's seq_len of history in their segment), so a longer window is not judged
on fewer, later origins.

# B: batch  S: training sequence length  L: seq_len  F: features  H: horizon  T: targets
# M: scored origins
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

import numpy as np

from seqcast.edge.model.backends import first_backend
from seqcast.edge.model.runtime import LoadedModel
from seqcast.train import data as D
from seqcast.train.compare import SweepRow
from seqcast.train.evaluate import Predictions, format_table, predict
from seqcast.train.fit import FitResult, fit
from seqcast.train.grid import Candidate
from seqcast.train.options import Architecture, FitOptions
from seqcast.train.prepare import Prepared
from seqcast.train.windows import window_origins

TIMING_REPS = 300
TIMING_WARMUP = 20


def common_origin_times(val: D.Series, longest: int, horizon: int) -> np.ndarray:
    """(M,) times of the validation origins the longest candidate can forecast."""
    times: np.ndarray = val.times[window_origins(val.segment_starts, len(val), longest, horizon)]
    return times


def _common_mae(p: Predictions, method: str, common_times: np.ndarray) -> float:
    keep = np.isin(p.origin_times, common_times)
    return float(np.mean(np.abs(p.by_method[method][keep] - p.truth[keep])))


def _median_costs(model: LoadedModel, x: np.ndarray, L: int) -> tuple[float, float | None]:
    """Interleaved batch-1 timings (window, step) in µs, medians over TIMING_REPS."""
    window_x, step_x = x[None, :L], x[:1]  # (1, L, F), (1, F)
    states = model.zero_states(1)
    win: list[int] = []
    step: list[int] = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for i in range(TIMING_WARMUP + TIMING_REPS):
            for which in ("w", "s") if i % 2 == 0 else ("s", "w"):
                if which == "s" and not model.has_step:
                    continue
                t0 = time.perf_counter_ns()
                if which == "w":
                    model.window(window_x)
                else:
                    _, states = model.step(step_x, states)
                dt = time.perf_counter_ns() - t0
                if i >= TIMING_WARMUP:
                    (win if which == "w" else step).append(dt)
    finally:
        if gc_was_enabled:
            gc.enable()
    return float(np.median(win)) / 1e3, (float(np.median(step)) / 1e3 if step else None)


def measure(o: FitOptions, result: FitResult, common_times: np.ndarray) -> SweepRow:
    """The comparison row of a trained candidate (its `seconds` are the caller's to set)."""
    splits: D.Splits = result.splits
    model = LoadedModel(result.bundle, first_backend())
    season = int(result.metrics["season_steps"])
    preds = predict(model, result.scaler, splits.train, splits.val, [season], strong_baseline=False)
    m = result.metrics
    L = o.seq_len
    window_us, stream_us = _median_costs(model, result.scaler.features(splits.val), L)
    assert result.bundle.path is not None
    return SweepRow(
        seq_len=L,
        val_mae_window=_common_mae(preds, "window", common_times),
        val_mae_stream=_common_mae(preds, "stream", common_times) if model.has_step else None,
        val_mae_persistence=_common_mae(preds, "persistence", common_times),
        val_mae_seasonal_naive=_common_mae(preds, f"seasonal_naive_{season}", common_times),
        test_mae=float(m["stream" if "stream" in m else "window"]["mae"]),
        train_seconds=round(result.train_seconds, 2),
        bundle_bytes=result.bundle.path.stat().st_size,
        window_us=window_us,
        stream_us=stream_us,
        bundle=str(result.bundle.path),
        cell=o.cell,
        units=tuple(o.units),
        epochs_run=len(result.history.get("loss", [])),
    )


class LabelBeforeTable:
    """A stdout that writes `label` on its own line just before fit()'s metrics table.

    fit() prints that table after Keras's epoch lines, so a label printed before fit() would
    sit far from it; everything else passes straight through, so training progress stays live.
    """

    def __init__(self, out: TextIO, label: str) -> None:
        self._out, self._header = out, format_table({}).splitlines()[0]
        self.label: str | None = label  # None once written

    def write(self, s: str) -> int:
        if self.label is not None and s.startswith(self._header):
            self._out.write(self.label + "\n")
            self.label = None
        return self._out.write(s)

    def __getattr__(self, name: str) -> Any:  # flush, isatty, fileno ... of the real stdout
        return getattr(self._out, name)


def fit_labelled(o: FitOptions, label: str, prepared: Prepared) -> FitResult:
    labeller = LabelBeforeTable(sys.stdout, label)
    with contextlib.redirect_stdout(labeller):
        result = fit(o, prepared)
    if labeller.label is not None:  # fit() printed no table: print one, so every run has it
        print(f"{label}\n{format_table(result.metrics)}")
    return result


def train_and_measure(
    o: FitOptions, label: str, prepared: Prepared, longest: int
) -> tuple[SweepRow, FitResult]:
    """fit() one candidate, then score it on the origins the `longest` candidate forecasts."""
    t0 = time.perf_counter()
    result = fit_labelled(o, label, prepared)
    common = common_origin_times(result.splits.val, longest, o.horizon)
    row = measure(o, result, common)
    return dataclasses.replace(row, seconds=round(time.perf_counter() - t0, 2)), result


PROBE_WARMUP = 2
PROBE_BATCHES = 8


def batch_seconds(
    o: FitOptions, plan: Sequence[Candidate], width: int, n_targets: int
) -> dict[Candidate, float]:
    """Least seconds of one training batch of each candidate's model (zeros in, after a warm-up):
    the relative cost of its epochs. A streaming epoch's cost does not depend on seq_len (see
    train/grid.py), so candidates that differ only in it share one measurement."""
    import keras

    from seqcast.train.models import build

    window_mode = o.mode == "window"
    steps = o.train_len or 4 * min(c.seq_len for c in plan)
    measured: dict[tuple[str, tuple[int, ...], int], float] = {}
    out: dict[Candidate, float] = {}
    for c in plan:
        key = (c.cell, c.units, c.seq_len if window_mode else 0)
        if key not in measured:
            arch = Architecture(
                c.cell, c.units, o.dropout, o.recurrent_dropout, o.conv1d, o.bidirectional
            )
            f = build(arch, width, o.horizon, n_targets, c.seq_len)
            f.model.compile(optimizer=keras.optimizers.Adam(o.learning_rate), loss="mse")
            S = c.seq_len if window_mode else steps
            x = np.zeros((o.batch_size, S, width), np.float32)  # (B, S or L, F)
            y_shape = [o.batch_size] + [S if d is None else d for d in f.model.output_shape[1:]]
            y = np.zeros(y_shape, np.float32)  # (B, S, H, T) streaming, (B, H, T) window
            times = []
            for i in range(PROBE_WARMUP + PROBE_BATCHES):
                t0 = time.perf_counter()
                f.model.train_on_batch(x, y)
                if i >= PROBE_WARMUP:
                    times.append(time.perf_counter() - t0)
            measured[key] = min(times)  # other processes only ever add time
            del f
        out[c] = measured[key]
    return out
