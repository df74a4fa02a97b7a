"""Train one model per sequence length; compare validation error, size and inference cost.

Validation MAE is scored on the origins every candidate can forecast (validation steps t with
max(seq_lens) steps of history in their segment), so a longer window is not judged on fewer,
later origins. The naive baselines (persistence, seasonal naive) are scored on the same origins;
a length is recommended only if its model beats the better of them.

# L: seq_len  F: features  H: horizon  T: targets  M: scored origins
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from seqcast.edge.model.backends import first_backend
from seqcast.edge.model.runtime import LoadedModel
from seqcast.train import data as D
from seqcast.train.evaluate import Predictions, format_table, predict
from seqcast.train.fit import FitOptions, FitResult, fit
from seqcast.train.prepare import Prepared, prepare
from seqcast.train.windows import window_origins

log = logging.getLogger(__name__)

WITHIN = 0.02  # "as good as the best": validation MAE within 2 %
TIMING_REPS = 300
TIMING_WARMUP = 20
PER_RUN = ("seq_len", "out", "report")  # set per candidate, not by the caller
ADVICE = (
    "train longer or wider (--epochs, --units), add calendar columns (hour of day, weekday) "
    "as --features, or try a --seq-len that covers at least one season"
)


@dataclass(frozen=True)
class SweepRow:
    seq_len: int
    val_mae_window: float  # original units, common validation origins
    val_mae_stream: float | None  # None in window mode
    val_mae_persistence: float  # naive baselines, same origins and units
    val_mae_seasonal_naive: float
    test_mae: float  # stream if present, else window (fit()'s test metrics)
    train_seconds: float
    bundle_bytes: int
    window_us: float  # median µs per sample: one batch-1 invoke on a (1, L, F) window
    stream_us: float | None  # median µs per sample: one batch-1 step invoke
    bundle: str

    @property
    def val_mae(self) -> float:
        """The error of the mode the daemon would run."""
        return self.val_mae_stream if self.val_mae_stream is not None else self.val_mae_window

    @property
    def cost_us(self) -> float:
        return self.stream_us if self.stream_us is not None else self.window_us

    @property
    def mode(self) -> str:
        return "stream" if self.val_mae_stream is not None else "window"

    @property
    def baseline(self) -> tuple[str, float]:
        """The better naive method on the same validation origins, and its MAE."""
        naive = [
            ("persistence", self.val_mae_persistence),
            ("seasonal_naive", self.val_mae_seasonal_naive),
        ]
        return min(naive, key=lambda m: m[1])

    @property
    def beats_baseline(self) -> bool:
        return self.val_mae < self.baseline[1]


@dataclass(frozen=True)
class Decision:
    lowest: SweepRow  # lowest validation MAE, whether or not it beats the baseline
    recommended: SweepRow | None  # None when no candidate beats its naive baseline
    cheapest: SweepRow | None  # cheapest within WITHIN of `recommended`
    baseline: str  # the naive method `recommended` (or else `lowest`) is compared with
    baseline_mae: float


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


def _row(L: int, result: FitResult, common_times: np.ndarray) -> SweepRow:
    splits: D.Splits = result.splits
    model = LoadedModel(result.bundle, first_backend())
    season = int(result.metrics["season_steps"])
    preds = predict(model, result.scaler, splits.train, splits.val, [season], strong_baseline=False)
    m = result.metrics
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
    )


def pick(rows: list[SweepRow]) -> tuple[SweepRow, SweepRow]:
    """(lowest validation MAE, cheapest per sample within WITHIN of it)."""
    best = min(rows, key=lambda r: r.val_mae)
    near = [r for r in rows if r.val_mae <= best.val_mae * (1 + WITHIN)]
    return best, min(near, key=lambda r: (r.cost_us, r.seq_len))


def decide(rows: list[SweepRow]) -> Decision:
    """pick() among the candidates that beat their naive baseline; none recommended if none do."""
    lowest = min(rows, key=lambda r: r.val_mae)
    winners = [r for r in rows if r.beats_baseline]
    if not winners:
        return Decision(lowest, None, None, *lowest.baseline)
    best, cheap = pick(winners)
    return Decision(lowest, best, cheap, *best.baseline)


def decision_lines(d: Decision) -> list[str]:
    """The verdict under the table: a recommendation, or a warning and what to try."""
    if d.recommended is None:
        low = d.lowest
        return [
            f"warning: no candidate beats the naive baseline: {d.baseline} has validation MAE "
            f"{d.baseline_mae:.4f}, the lowest model MAE is {low.val_mae:.4f} "
            f"(seq_len {low.seq_len}, {low.mode}); no --seq-len is worth deploying yet",
            f"  advice: {ADVICE}",
        ]
    best, cheap = d.recommended, d.cheapest
    assert cheap is not None
    lines = [
        f"recommended: --seq-len {best.seq_len} (lowest validation MAE, {best.mode} "
        f"{best.val_mae:.4f}; naive baseline {d.baseline} {d.baseline_mae:.4f})"
    ]
    if cheap is best:
        lines.append(f"  it is also the cheapest within {WITHIN:.0%} of that MAE")
    else:
        lines.append(
            f"  cheapest within {WITHIN:.0%}: --seq-len {cheap.seq_len} (MAE {cheap.val_mae:.4f}, "
            f"{cheap.cost_us:.1f} vs {best.cost_us:.1f} µs/sample in {best.mode} mode)"
        )
    return lines


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def format_sweep(rows: list[SweepRow]) -> str:
    head = ("seq_len", "val MAE win", "val MAE stream", "val MAE naive", "test MAE", "train s",
            "bundle KiB", "win µs/sample", "stream µs/sample")  # fmt: skip
    widths = [max(8, len(h) + 2) for h in head]
    lines = [
        "sweep summary per seq_len (validation MAE on the origins all candidates forecast; "
        "naive: the better of persistence and seasonal_naive)",
        "".join(h.rjust(w) for h, w in zip(head, widths, strict=True)),
        "-" * sum(widths),
    ]
    for r in rows:
        cells = (str(r.seq_len), _fmt(r.val_mae_window, ".4f"), _fmt(r.val_mae_stream, ".4f"),
                 _fmt(r.baseline[1], ".4f"), _fmt(r.test_mae, ".4f"), _fmt(r.train_seconds, ".1f"),
                 _fmt(r.bundle_bytes / 1024, ".1f"), _fmt(r.window_us, ".1f"),
                 _fmt(r.stream_us, ".1f"))  # fmt: skip
        lines.append("".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)))
    lines += decision_lines(decide(rows))
    return "\n".join(lines)


class _LabelBeforeTable:
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


def _fit_labelled(o: FitOptions, label: str, prepared: Prepared) -> FitResult:
    labeller = _LabelBeforeTable(sys.stdout, label)
    with contextlib.redirect_stdout(labeller):
        result = fit(o, prepared)
    if labeller.label is not None:  # fit() printed no table: print one, so every length has it
        print(f"{label}\n{format_table(result.metrics)}")
    return result


def _plot(rows: list[SweepRow], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter, NullLocator

    Ls = [r.seq_len for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(Ls, [r.val_mae_window for r in rows], "o-", color="C0", label="val MAE window")
    if all(r.val_mae_stream is not None for r in rows):
        ax.plot(Ls, [r.val_mae_stream for r in rows], "s-", color="C1", label="val MAE stream")
    method, mae = min((r.baseline for r in rows), key=lambda m: m[1])
    ax.axhline(mae, color="grey", ls=":", label=f"val MAE {method} (naive)")
    ax.set(xlabel="seq_len", ylabel="validation MAE (original units)", xscale="log")
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticks(Ls, [str(L) for L in Ls])
    cost = ax.twinx()
    cost.plot(Ls, [r.window_us for r in rows], "o--", color="C2", label="µs/sample window")
    if all(r.stream_us is not None for r in rows):
        cost.plot(Ls, [r.stream_us for r in rows], "s--", color="C3", label="µs/sample stream")
    cost.set(ylabel="median µs per sample (batch 1)", yscale="log")
    for axis in (cost.yaxis.set_major_formatter, cost.yaxis.set_minor_formatter):
        axis(FormatStrFormatter("%g"))
    handles = ax.get_legend_handles_labels()[0] + cost.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="best", fontsize="small")
    ax.set_title("seq_len sweep: validation error and inference cost")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def sweep(options: FitOptions, seq_lens: list[int], out_dir: Path) -> list[SweepRow]:
    lens = sorted(set(seq_lens))
    if not lens or lens[0] < 1:
        raise D.DataError(f"--seq-lens: need lengths >= 1, got {seq_lens}")
    need = lens[-1] + options.horizon  # every candidate trains on the same segments
    prepare(dataclasses.replace(options, seq_len=lens[-1]), need)  # fail before training
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[SweepRow] = []
    for i, L in enumerate(lens, 1):
        log.info("sweep: training seq_len %d", L)
        o = dataclasses.replace(
            options, seq_len=L, out=str(out_dir / f"seq{L}.seqcast"), report=False
        )
        label = f"seq_len {L} ({i} of {len(lens)}): test-split error by method (original units)"
        result = _fit_labelled(o, label, prepare(o, need))
        val = result.splits.val  # common origins: those of the longest candidate
        common = val.times[window_origins(val.segment_starts, len(val), lens[-1], o.horizon)]
        rows.append(_row(L, result, common))
        del result
    print(format_sweep(rows))
    doc = sweep_doc(options, lens, rows)
    (out_dir / "sweep.json").write_text(json.dumps(doc, indent=2, allow_nan=False))
    _plot(rows, out_dir / "sweep.png")
    print(f"wrote {out_dir / 'sweep.json'} and {out_dir / 'sweep.png'}")
    return rows


def sweep_doc(options: FitOptions, lens: list[int], rows: list[SweepRow]) -> dict[str, Any]:
    d = decide(rows)
    return {
        "options": {k: v for k, v in dataclasses.asdict(options).items() if k not in PER_RUN},
        "seq_lens": lens,
        "rows": [dataclasses.asdict(r) for r in rows],
        "recommended": d.recommended.seq_len if d.recommended else None,
        "cheapest_within_2pct": d.cheapest.seq_len if d.cheapest else None,
        "beats_baseline": d.recommended is not None,
        "baseline": {"method": d.baseline, "val_mae": d.baseline_mae},
        "lowest_val_mae_seq_len": d.lowest.seq_len,
    }
