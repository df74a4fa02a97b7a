"""What `auto` shows: the table of trained candidates, the budget lines, auto.json and auto.png
(validation error against training time and against inference cost)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from seqcast.train.compare import Decision, SweepRow, aligned, decision_lines, fmt
from seqcast.train.grid import Candidate, Outcome, row_flags
from seqcast.train.options import FitOptions

PER_RUN = ("seq_len", "cell", "units", "out", "report", "name")  # set per candidate


def format_auto(outcome: Outcome, d: Decision, picked: SweepRow) -> str:
    """The table (validation only: the test split is not looked at to choose), the verdict, what
    the budget skipped."""
    head = ("candidate", "val MAE win", "val MAE stream", "val MAE naive", "epochs",
            "train s", "total s", "predicted s", "bundle KiB", "win µs/sample",
            "stream µs/sample")  # fmt: skip
    body = []
    for r in outcome.rows:
        guess = outcome.predicted.get(Candidate.of(r))
        mark = "* " if r is picked else ""
        body.append((mark + Candidate.of(r).label, fmt(r.val_mae_window, ".4f"),
                     fmt(r.val_mae_stream, ".4f"), fmt(r.baseline[1], ".4f"), str(r.epochs_run),
                     fmt(r.train_seconds, ".1f"), fmt(r.seconds, ".1f"), fmt(guess, ".0f"),
                     fmt(r.bundle_bytes / 1024, ".1f"), fmt(r.window_us, ".1f"),
                     fmt(r.stream_us, ".1f")))  # fmt: skip
    lines = [
        "auto summary in the order trained (validation MAE on the origins all candidates "
        "forecast; naive: the better of persistence and seasonal_naive; * the bundle written)",
        *aligned(head, body),
        *decision_lines(d, row_flags),
        *budget_lines(outcome),
    ]
    return "\n".join(lines)


def budget_lines(outcome: Outcome) -> list[str]:
    n, m = len(outcome.rows), len(outcome.skipped)
    lines = [
        f"budget {outcome.budget_s / 60:g} min: {outcome.elapsed_s / 60:.1f} min spent on "
        f"{n} candidate{'s' * (n != 1)}, {m} skipped (predicted to overrun)"
    ]
    lines += [f"  {s.line()}" for s in outcome.skipped]
    if outcome.overran and n == 1:
        lines.append(
            f"warning: the budget ({outcome.budget_s / 60:g} min) was too small for even one "
            f"candidate: the cheapest took {outcome.rows[0].seconds / 60:.1f} min and is the one "
            "written; raise --budget to compare candidates"
        )
    elif outcome.overran:
        last = outcome.rows[-1]
        guess = outcome.predicted.get(Candidate.of(last))
        lines.append(
            f"warning: the candidates took {outcome.elapsed_s / 60:.1f} min, over the budget: "
            f"{Candidate.of(last).label} was predicted to take {fmt(guess, '.0f')} s and took "
            f"{last.seconds:.0f} s"
        )
    return lines


def auto_doc(
    options: FitOptions,
    plan: list[Candidate],
    outcome: Outcome,
    d: Decision,
    picked: SweepRow,
    test_metrics: dict[str, Any],
) -> dict[str, Any]:
    def name(r: SweepRow | None) -> str | None:
        return None if r is None else Candidate.of(r).slug

    return {
        "options": {k: v for k, v in dataclasses.asdict(options).items() if k not in PER_RUN},
        "budget_minutes": outcome.budget_s / 60,
        "elapsed_seconds": round(outcome.elapsed_s, 1),
        "plan": [c.slug for c in plan],
        "rows": [
            {
                "candidate": name(r),
                **dataclasses.asdict(r),
                "predicted_seconds": outcome.predicted.get(Candidate.of(r)),
            }
            for r in outcome.rows
        ],
        "skipped": [
            {
                "candidate": s.candidate.slug,
                "predicted_seconds": s.predicted_s,
                "left_seconds": s.left_s,
            }
            for s in outcome.skipped
        ],
        "picked": {"candidate": name(picked), "flags": row_flags(picked), "out": options.out},
        "recommended": name(d.recommended),
        "cheapest_within_2pct": name(d.cheapest),
        "beats_baseline": d.recommended is not None,
        "baseline": {"method": d.baseline, "val_mae": d.baseline_mae},
        "test_mae": {
            k: v["mae"] for k, v in test_metrics.items() if isinstance(v, dict) and "mae" in v
        },
    }


def plot_auto(rows: list[SweepRow], picked: SweepRow, path: Path) -> None:
    """Validation MAE against training seconds (left) and µs per sample (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    maes = [r.val_mae for r in rows]
    method, naive = min((r.baseline for r in rows), key=lambda m: m[1])
    shown = naive <= 1.5 * max(maes)  # a baseline far above every model would flatten them
    low, high = min(maes + [naive] * shown), max(maes + [naive] * shown)
    pad = max(0.05 * (high - low), 0.02 * high)
    for ax, xs, xlabel in (
        (axes[0], [r.seconds for r in rows], "wall seconds per candidate (training and scoring)"),
        (axes[1], [r.cost_us for r in rows], "median µs per sample (batch 1, the mode run)"),
    ):
        for r, x in zip(rows, xs, strict=True):
            color = "C0" if r.cell == "gru" else "C1"
            ax.scatter([x], [r.val_mae], s=120 if r is picked else 40, color=color,
                       marker="*" if r is picked else "o", zorder=3)  # fmt: skip
            ax.annotate(f"{r.units[0]}u L{r.seq_len}", (x, r.val_mae), fontsize=7,
                        xytext=(4, 4), textcoords="offset points")  # fmt: skip
        if shown:
            ax.axhline(naive, color="grey", ls=":", label=f"{method} (naive) {naive:.4g}")
        ax.set(xlabel=xlabel)
        ax.grid(alpha=0.3)
    axes[0].set(ylabel=f"validation MAE, {rows[0].mode} (original units)",
                ylim=(low - pad, high + pad))  # fmt: skip
    handles = [Line2D([], [], color=c, marker="o", ls="", label=cell)
               for c, cell in (("C0", "gru"), ("C1", "lstm"))]  # fmt: skip
    handles.append(Line2D([], [], color="k", marker="*", ls="", ms=10, label="written"))
    axes[0].legend(handles=handles + axes[0].get_legend_handles_labels()[0], fontsize="small")
    off = "" if shown else f"; naive baseline {method} {naive:.4g} is off the chart"
    fig.suptitle(f"auto: validation error against cost{off}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
