"""Train one model per sequence length; compare validation error, size and inference cost.

Every candidate is scored on the same validation origins as the longest (train/candidate.py),
beside the naive baselines; a length is recommended only if its model beats the better of them
(train/compare.py).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

from seqcast.train import data as D
from seqcast.train.candidate import train_and_measure
from seqcast.train.compare import SweepRow, decide, format_sweep
from seqcast.train.options import FitOptions
from seqcast.train.prepare import prepare

log = logging.getLogger(__name__)

PER_RUN = ("seq_len", "out", "report")  # set per candidate, not by the caller


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
        row, result = train_and_measure(o, label, prepare(o, need), lens[-1])
        rows.append(row)
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
