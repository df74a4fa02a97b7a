"""The report written next to a bundle: metrics JSON, learning curves, forecast vs actual.

Forecast times follow the model's grid (`Grid.shift`): one month after 2024-01-01 is 2024-02-01.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from seqcast.edge.model.bundle import Bundle
from seqcast.edge.quantiles import name as quantile_name
from seqcast.edge.timegrid import Grid
from seqcast.train.evaluate import Predictions


def report_dir_for(bundle_path: Path) -> Path:
    return bundle_path.with_name(bundle_path.stem + ".report")


def forecast_times(grid: Grid, origin_times: np.ndarray, k: int) -> np.ndarray:
    """The time each forecast `k` steps after its origin is for, on the calendar."""
    return np.array([grid.shift(float(t), k) for t in origin_times], dtype=np.float64)


def write_report(
    bundle_path: Path, bundle: Bundle, history: dict[str, list[float]], preds: Predictions
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = report_dir_for(bundle_path)
    out.mkdir(parents=True, exist_ok=True)
    m = bundle.manifest
    summary: dict[str, Any] = {
        "bundle": str(bundle_path),
        "model": bundle.model_id,
        "manifest": {k: v for k, v in m.to_json().items() if k not in ("selftest",)},
        "data": m.metrics.get("data", {}),
        "history": history,
    }
    (out / "report.json").write_text(json.dumps(summary, indent=2))

    fig, ax = plt.subplots(figsize=(7, 4))
    for key, vals in history.items():
        ax.plot(np.arange(1, len(vals) + 1), vals, marker="o", label=key)
    ax.set(
        xlabel="epoch",
        ylabel="MSE + pinball (scaled units)" if m.quantiles else "MSE (scaled units)",
        title=f"{m.name}: learning curves",
        yscale="log",
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "learning_curves.png", dpi=110)
    plt.close(fig)

    # one week (or what fits) of the test split, first forecast step and last one
    n = min(len(preds.truth), int(round(7 * 86400 / m.interval_s)) if m.interval_s < 86400 else 200)
    fig, axes = plt.subplots(len(m.targets), 1, figsize=(11, 3.5 * len(m.targets)), squeeze=False)

    def at(k: int) -> np.ndarray:  # plot each forecast at the time it is for
        return forecast_times(m.grid, preds.origin_times[:n], k).astype("datetime64[s]")

    best_baseline = m.metrics.get("verdict", {}).get("best_baseline", "persistence")
    for j, target in enumerate(m.targets):
        ax = axes[j, 0]
        ax.plot(at(1), preds.truth[:n, 0, j], color="black", lw=1.2, label="actual")
        band = next((k for k in ("stream", "window") if k in preds.bands), None)
        if band is not None and len(preds.quantiles) >= 2:  # the outermost interval, at t+1
            lo, hi = preds.bands[band][:n, 0, j, 0], preds.bands[band][:n, 0, j, -1]
            names = f"{quantile_name(preds.quantiles[0])}..{quantile_name(preds.quantiles[-1])}"
            ax.fill_between(at(1), lo, hi, alpha=0.25, lw=0, label=f"{band} t+1 {names}")
        elif band is not None:  # one quantile: its line
            q = quantile_name(preds.quantiles[0])
            ax.plot(at(1), preds.bands[band][:n, 0, j, 0], lw=0.8, ls=":", label=f"{band} {q}")
        for method in ("stream", "window", best_baseline):
            if method in preds.by_method:
                ax.plot(at(1), preds.by_method[method][:n, 0, j], lw=0.9, label=f"{method} t+1")
        if "stream" in preds.by_method and m.horizon > 1:
            ax.plot(
                at(m.horizon),
                preds.by_method["stream"][:n, -1, j],
                lw=0.9,
                ls="--",
                label=f"stream t+{m.horizon}",
            )
        ax.set(title=f"{target}: forecast vs actual (test split)", ylabel=target)
        ax.legend(ncol=3, fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(out / "forecast_vs_actual.png", dpi=110)
    plt.close(fig)
    return out
