"""Prediction intervals on each series: the defaults plus `--quantiles 0.1,0.9`, seed 0, the
intervals calibrated on validation as the trainer does; their test coverage per quantile (the
fraction of actual values at or below it) against the nominal level, through the interpreter."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

QUANTILES = (0.1, 0.9)


def run_intervals(o: Any, out: Path) -> dict[str, Any]:
    from seqcast.train.fit import fit
    from seqcast.train.prepare import prepare

    oq = dataclasses.replace(o, seed=0, quantiles=QUANTILES, out=str(out))
    t0 = time.perf_counter()
    r = fit(oq, prepare(oq))
    m = r.metrics
    row: dict[str, Any] = {
        "quantiles": list(QUANTILES),
        "fit_seconds": round(time.perf_counter() - t0, 1),
        "calibration": m.get("interval_calibration"),
        "predict": r.bundle.manifest.architecture["predict"],  # --predict auto's choice
    }
    for mode in ("stream", "window"):
        if isinstance(m.get(mode), dict):
            row[mode] = {
                "mae": m[mode]["mae"],
                "coverage": {n: q["coverage"] for n, q in m[mode]["quantiles"].items()},
                "interval": m[mode]["interval"],
            }
    return row


def worst_miss(row: dict[str, Any]) -> float:
    """The largest |coverage - nominal| in points over quantiles and modes."""
    return max(
        100 * abs(row[mode]["coverage"][name] - q)
        for mode in ("stream", "window")
        if mode in row
        for name, q in zip(row[mode]["coverage"], row["quantiles"], strict=True)
    )
