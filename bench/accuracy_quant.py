"""The same trained model at another precision: the Keras model `fit` trained is converted again
(`train/export.py`, as `--quantize` does), written as a bundle with its own self-test vectors and
scored through the real interpreter on the same test origins. Same weights as the float32
bundle, so the MAE difference is the precision's alone (and no second training run).

# L: seq_len  F: features
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from seqcast.edge.model.backends import first_backend
from seqcast.edge.model.bundle import STEP_FILE, WINDOW_FILE, Bundle, write_bundle
from seqcast.edge.model.runtime import LoadedModel
from seqcast.train.baselines import seasons_for
from seqcast.train.evaluate import predict, score
from seqcast.train.fit import SELFTEST_TOLERANCE, FitResult, _selftest_vectors
from seqcast.train.prepare import Prepared


def requantize(r: FitResult, p: Prepared, quantization: str, out: Path) -> dict[str, Any]:
    """-> {"stream": MAE, "window": MAE, "bundle_bytes", "origins"} of `r`'s model at
    `quantization`, its bundle written to `out`."""
    from seqcast.train import export

    m = r.bundle.manifest
    L = m.seq_len
    x_train = r.scaler.features(r.splits.train)  # (N, F) scaled, with the calendar columns
    rep_x = x_train[None, :L]  # (1, L, F): representative data, read by int8 only
    models = {
        WINDOW_FILE: export.convert_window(r.window_keras, r.forecaster, L, quantization, rep_x)
    }
    if STEP_FILE in r.bundle.models:
        _, seen = export.keras_step_run(r.forecaster, rep_x)
        models[STEP_FILE] = export.convert_step(r.forecaster, quantization, seen)
    manifest = dataclasses.replace(
        m, quantization=quantization, files={n: "" for n in models}, metrics={}, selftest={}
    )
    provisional = LoadedModel(Bundle(manifest, models, sha256="0" * 64), first_backend())
    selftest = _selftest_vectors(
        provisional,
        r.scaler.features(r.splits.test),
        L,
        m.min_history,
        SELFTEST_TOLERANCE[quantization],
    )
    history = p.series.slice(0, len(r.splits.train) + len(r.splits.val))
    seasons = seasons_for(p.series.grid)
    preds = predict(provisional, r.scaler, history, r.splits.test, seasons, strong_baseline=False)
    metrics = score(preds, list(m.targets))
    write_bundle(out, dataclasses.replace(manifest, selftest=selftest, metrics=metrics), models)
    row: dict[str, Any] = {
        "bundle_bytes": out.stat().st_size,
        "origins": metrics["origins"],
        "window": metrics["window"]["mae"],
    }
    if "stream" in metrics:
        row["stream"] = metrics["stream"]["mae"]
    return row
