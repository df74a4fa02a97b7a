"""The whole training job: data -> model -> TFLite -> evaluated, self-testing bundle.

# B: batch  S: training sequence length  L: seq_len  F: features  H: horizon  T: targets
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from seqcast.edge.model.backends import first_backend
from seqcast.edge.model.bundle import (
    STEP_FILE,
    WINDOW_FILE,
    Bundle,
    Manifest,
    Scaler,
    StateSpec,
    write_bundle,
)
from seqcast.edge.model.runtime import LoadedModel
from seqcast.train import data as D
from seqcast.train.anchor import anchor_for
from seqcast.train.baselines import seasons_for, verdict_line
from seqcast.train.evaluate import format_table, predict, score
from seqcast.train.models import MASK_VALUE, Architecture, build, state_names, window_model
from seqcast.train.options import FitOptions
from seqcast.train.prepare import Prepared, prepare
from seqcast.train.prepare import load_series as load_series  # sweep imports it from here
from seqcast.train.quantiles import point_mse, training_loss
from seqcast.train.smoothing import smoothed_anchor
from seqcast.train.validation import (
    Trained,
    calibrate_intervals,
    choose_predict,
    naive_mse,
    outside_range,
)
from seqcast.train.windows import longest_segment, segment_sequences, window_origins, windows

log = logging.getLogger(__name__)

VAL_POINT_MSE = "val_point_mse"  # with quantiles: what early stopping watches (quantiles.point_mse)
MIN_BATCHES = 8  # per epoch: smaller training sets are repeated (`at_least`)
SELFTEST_TOLERANCE = {"float32": 1e-4, "float16": 1e-3, "dynamic": 1e-3, "int8": 5e-3}


@dataclass
class FitResult:
    bundle: Bundle
    metrics: dict[str, Any]
    history: dict[str, list[float]]
    train_seconds: float
    report_dir: Path | None
    forecaster: Any  # train.models.Forecaster: the Keras side, for tests and comparisons
    window_keras: Any  # keras.Model (B, L, F) -> (B, H, C)
    scaler: D.FittedScaler
    splits: D.Splits


def _train(
    o: FitOptions,
    arch: Architecture,
    splits: D.Splits,
    scaler: D.FittedScaler,
    min_history: int,
    quantiles: tuple[float, ...] = (),
    season: int | None = None,
):
    import keras

    keras.utils.set_random_seed(o.seed)
    xs = {k: scaler.features(s) for k, s in (("train", splits.train), ("val", splits.val))}
    F, T = xs["train"].shape[1], len(splits.train.target_names)  # F: features + calendar
    anchor = None
    if o.predict in ("change", "seasonal", "smooth"):
        tr = splits.train
        anchor = anchor_for(
            tr.feature_names, tr.target_names, scaler.feature_mean, scaler.feature_std,
            scaler.target_mean, scaler.target_std, 1 if o.predict == "change" else season,
            scaler.targets(tr), tr.segment_starts,
        )  # fmt: skip
    ys = {k: scaler.targets(s) for k, s in (("train", splits.train), ("val", splits.val))}
    parts = {"train": splits.train, "val": splits.val}
    need = o.seq_len + o.horizon  # a segment piece shorter than one window is not used
    if arch.streaming:
        a, b = longest_segment(splits.train.segment_starts, len(splits.train))
        length = min(o.train_len or 4 * o.seq_len, b - a - o.horizon)
        stride = max(1, length // 8)
        data = {}
        for k, part in parts.items():
            # -> (M, S, F), (M, S, H, T), (M, S): sequences stay inside one segment
            X, Y, valid = segment_sequences(
                xs[k], ys[k], length, stride, o.horizon, part.segment_starts, need
            )
            # no loss before min_history samples: the daemon never publishes those forecasts;
            # none on the padding after a short segment either
            w = valid[:, :, None].astype(np.float32)  # broadcasts over H
            w[:, : min_history - 1] = 0.0
            data[k] = (X, Y, w)
    else:
        data = {
            k: windows(xs[k], ys[k], o.seq_len, o.horizon, part.segment_starts)
            for k, part in parts.items()
        }
    if anchor is not None and o.predict == "smooth":  # its constants, chosen on training
        X, Y, *weight = data["train"]  # windows have no weights: their last position counts
        anchor = smoothed_anchor(anchor, X, Y, weight[0][..., 0] if weight else None)
    f = build(arch, F, o.horizon, T, o.seq_len, quantiles, anchor)
    # the point forecasts' MSE, plus the quantiles' pinball loss (train/quantiles.py)
    # (early stopping and the schedule watch the point forecasts' MSE either way)
    loss, watched = (training_loss(quantiles), [point_mse(quantiles)]) if quantiles else ("mse", [])
    f.model.compile(
        optimizer=keras.optimizers.Adam(o.learning_rate, clipnorm=1.0),
        loss=loss,
        weighted_metrics=watched,
    )
    verbose = o.verbose if o.verbose is not None else (1 if sys.stderr.isatty() else 2)
    # the usual stop is validation: the learning rate halves when it stalls, training ends when
    # it has not improved for `patience` epochs; `epochs` is only a safety net
    # (an improvement is 1e-4 in scaled MSE, both for the schedule and for the stop: smaller
    # gains at the lowest rate would otherwise keep it going to the cap)
    monitor = VAL_POINT_MSE if quantiles else "val_loss"
    stop = keras.callbacks.EarlyStopping(
        monitor, patience=o.patience, min_delta=1e-4, mode="min", restore_best_weights=True
    )
    slower = keras.callbacks.ReduceLROnPlateau(
        monitor,
        factor=0.5,
        patience=max(1, o.patience // 3),
        min_delta=1e-4,
        min_lr=o.learning_rate / 64,
        mode="min",
    )
    t0 = time.perf_counter()
    train_arrays = at_least(data["train"], MIN_BATCHES * o.batch_size)
    hist = f.model.fit(
        *train_arrays[:2],
        sample_weight=train_arrays[2] if arch.streaming else None,
        validation_data=data["val"],
        epochs=o.epochs,
        batch_size=o.batch_size,
        callbacks=[stop, slower],
        verbose=verbose,
        shuffle=True,
    )
    history = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    return f, history, time.perf_counter() - t0, data["val"]


def at_least(arrays: tuple[np.ndarray, ...], examples: int) -> tuple[np.ndarray, ...]:
    """The training examples repeated whole until there are `examples` of them: on a small
    series (a monthly one holds a batch or two) an epoch would otherwise be one or two gradient
    steps, and early stopping's patience and the schedule would count steps, not epochs."""
    reps = -(-examples // len(arrays[0]))
    return arrays if reps <= 1 else tuple(np.concatenate([a] * reps) for a in arrays)


def stop_reason(history: dict[str, list[float]], o: FitOptions) -> tuple[str, bool]:
    """Why training ended, and whether that was the epoch cap while validation still improved
    (the model is probably not done)."""
    what = "validation point MSE" if VAL_POINT_MSE in history else "validation loss"
    val = history.get(VAL_POINT_MSE, history.get("val_loss", []))
    run, best = len(val), int(np.argmin(val)) + 1 if val else 0
    if run < o.epochs:
        return (
            f"early stopping: {what} did not improve (by 1e-4) for {o.patience} epochs "
            f"(best at epoch {best} of {run})",
            False,
        )
    still = run - best < o.patience
    why = f"the epoch cap ({o.epochs}) was reached (best {what} at epoch {best})"
    return why, still


def _selftest_vectors(model: LoadedModel, x_test: np.ndarray, L: int, min_history: int, tol: float):
    """A few inputs with the interpreter's own outputs; the device must reproduce them."""
    starts = sorted({0, (len(x_test) - L) // 2, len(x_test) - L})  # the split holds >= L + H rows
    wx = np.stack([x_test[i : i + L] for i in starts])
    if min_history < L:  # one left-padded, masked short history
        short = np.full((L, x_test.shape[1]), MASK_VALUE, np.float32)
        short[-min_history:] = x_test[:min_history]
        wx = np.concatenate([wx, short[None]])
    st: dict[str, Any] = {
        "tolerance": tol,
        "window": {"x": wx.tolist(), "y": model.window(wx).tolist()},
    }
    if model.has_step:
        sx = x_test[: min(L, 64)]
        states = model.zero_states(1)
        ys = []
        for t in range(len(sx)):
            y, states = model.step(sx[t : t + 1], states)
            ys.append(y[0])
        st["step"] = {"x": sx.tolist(), "y": np.stack(ys).tolist()}
    return st


def time_summary(series: D.Series) -> dict[str, Any]:
    """How the table met its grid: for the manifest's metrics and the report."""
    return {
        "grid": series.grid.describe(),
        "first": datetime.fromtimestamp(float(series.times[0]), UTC).isoformat(),
        "last": datetime.fromtimestamp(float(series.times[-1]), UTC).isoformat(),
        **series.stats.to_json(),
    }


def fit(o: FitOptions, prepared: Prepared | None = None) -> FitResult:
    """Train, convert, score and write the bundle; `prepared` is `prepare(o)` when the caller
    already checked the data (the CLI does, before TensorFlow is imported)."""
    from seqcast.train import export

    p = prepared if prepared is not None else prepare(o)
    series, arch, min_history, splits = p.series, p.arch, p.min_history, p.splits
    want_stream = o.mode == "stream"
    scaler = D.FittedScaler.fit(splits.train, p.calendar)

    def train(predict: str) -> Trained:
        return _train(dataclasses.replace(o, predict=predict), arch, splits, scaler, min_history,
                      p.quantiles, p.anchor_season)  # fmt: skip

    choice = None
    if o.predict == "auto":
        tr = splits.train
        y_val, starts = scaler.targets(splits.val), splits.val.segment_starts
        naive = {"persistence": naive_mse(y_val, starts, o.horizon)}
        if p.anchor_season:
            naive[f"seasonal_naive_{p.anchor_season}"] = naive_mse(
                y_val, starts, o.horizon, p.anchor_season
            )
        can_change = any(t in tr.feature_names for t in tr.target_names)
        leaves = outside_range(tr.targets, splits.val.targets)
        (f, history, train_s, val), choice = choose_predict(
            train, naive, can_change, p.anchor_season is not None, leaves
        )
        log.info("--predict auto: %s (%s)", choice.chosen, choice.reason)
    else:
        f, history, train_s, val = train(o.predict)
    predicted = choice.chosen if choice else o.predict
    calibration: dict[str, Any] = {}
    if p.quantiles:  # the training graph's (the step graph's, when streaming) intervals
        counted = val[2][:, :, 0] > 0 if arch.streaming else None  # (M, S): weights over H
        origins = len(window_origins(splits.val.segment_starts, len(splits.val), o.seq_len,
                                     o.horizon))  # fmt: skip
        calibration["stream" if arch.streaming else "window"] = calibrate_intervals(
            f.model, f.interval_scales, val[0], val[1], p.quantiles, counted, origins
        )
    stopped, unfinished = stop_reason(history, o)
    log.info("trained in %.1f s: %s", train_s, stopped)
    if unfinished:
        log.warning(
            "validation loss was still improving when training stopped: raise --epochs "
            "(or --learning-rate) for a better model"
        )

    x_train = scaler.features(splits.train)
    train_windows, _ = windows(
        x_train, x_train[:, :1], o.seq_len, 1, splits.train.segment_starts
    )  # -> (M, L, F), inside segments
    rep_x = train_windows[np.linspace(0, len(train_windows) - 1, 64, dtype=int)]
    win = window_model(f, o.seq_len, masked=min_history < o.seq_len)
    if f.window_scales:  # a streaming model's window graph: calibrated on validation windows
        x_val = scaler.features(splits.val)
        xw, yw = windows(x_val, scaler.targets(splits.val), o.seq_len, o.horizon,
                         splits.val.segment_starts)  # fmt: skip
        calibration["window"] = calibrate_intervals(win, f.window_scales, xw, yw, p.quantiles)
    models = {WINDOW_FILE: export.convert_window(win, f, o.seq_len, o.quantize, rep_x)}
    if want_stream:
        a, b = longest_segment(splits.train.segment_starts, len(x_train))
        rep_seq = x_train[None, a : min(b, a + 4 * o.seq_len)]
        _, seen = export.keras_step_run(f, rep_seq)
        models[STEP_FILE] = export.convert_step(f, o.quantize, seen)

    manifest = Manifest(
        name=o.name or Path(o.out).stem,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        features=list(series.feature_names),
        targets=list(series.target_names),
        seq_len=o.seq_len,
        horizon=o.horizon,
        interval_s=series.grid.interval_s,
        grid_spec=series.grid.to_json(),
        max_fill=o.max_fill,
        scaler=Scaler(
            *(
                v.astype(float).tolist()
                for v in (
                    scaler.feature_mean,
                    scaler.feature_std,
                    scaler.target_mean,
                    scaler.target_std,
                )
            )
        ),
        calendar=list(scaler.calendar),
        quantiles=list(p.quantiles),
        architecture={
            **arch.to_json(),
            "train_len": o.train_len or 4 * o.seq_len,
            "predict": predicted,
            **({"anchor_season": p.anchor_season} if predicted in ("seasonal", "smooth") else {}),
            **({"smoothing": f.anchor.constants()} if predicted == "smooth" else {}),
            "epochs_run": len(history["loss"]),
        },
        quantization=o.quantize,
        state=[StateSpec(n, [size]) for n, size in state_names(f)] if want_stream else [],
        min_history=min_history,
        mask_value=MASK_VALUE if min_history < o.seq_len else None,
        files={name: "" for name in models},
    )
    backend = first_backend()
    provisional = LoadedModel(Bundle(manifest, models, sha256="0" * 64), backend)
    x_test = scaler.features(splits.test)
    selftest = _selftest_vectors(
        provisional, x_test, o.seq_len, min_history, SELFTEST_TOLERANCE[o.quantize]
    )
    seasons = [o.season] if o.season else seasons_for(series.grid)
    history_part = series.slice(0, len(splits.train) + len(splits.val))
    preds = predict(provisional, scaler, history_part, splits.test, seasons, o.baselines == "all")
    metrics = score(preds, series.target_names)
    metrics.update(
        season_steps=seasons[0] if seasons else 1,
        train_seconds=round(train_s, 1),
        stopped=stopped,
        filled_cells=series.filled,
        data=time_summary(series),
    )
    if choice is not None:
        metrics["predict"] = choice.to_json()
    if calibration:
        metrics["interval_calibration"] = calibration
    print(format_table(metrics))
    print(verdict_line(metrics), file=sys.stderr if not metrics["verdict"]["beats"] else sys.stdout)
    manifest = dataclasses.replace(manifest, metrics=metrics, selftest=selftest)
    out = Path(o.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    bundle = write_bundle(out, manifest, models)
    report_dir = None
    if o.report:
        from seqcast.train.report import write_report

        report_dir = write_report(out, bundle, history, preds)
    return FitResult(bundle, metrics, history, train_s, report_dir, f, win, scaler, splits)
