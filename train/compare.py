"""Comparing trained candidates: one row per candidate, the verdict and the summary table. Pure
(no TensorFlow), shared by `sweep` (one model per seq_len) and `auto` (seq_len x cell x units).

A candidate is recommended only if its model beats the better naive baseline on the same
validation origins; among those, the lowest validation MAE wins, and the cheapest per sample
within WITHIN of it is offered (the tie-break toward cheaper).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

WITHIN = 0.02  # "as good as the best": validation MAE within 2 %
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
    cell: str = "lstm"
    units: tuple[int, ...] = (64,)
    epochs_run: int = 0
    seconds: float = 0.0  # the whole candidate: training, conversion, scoring, timing

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


def pick(rows: Sequence[SweepRow]) -> tuple[SweepRow, SweepRow]:
    """(lowest validation MAE, cheapest per sample within WITHIN of it)."""
    best = min(rows, key=lambda r: r.val_mae)
    near = [r for r in rows if r.val_mae <= best.val_mae * (1 + WITHIN)]
    return best, min(near, key=lambda r: (r.cost_us, r.seq_len, r.train_seconds))


def decide(rows: Sequence[SweepRow]) -> Decision:
    """pick() among the candidates that beat their naive baseline; none recommended if none do."""
    lowest = min(rows, key=lambda r: r.val_mae)
    winners = [r for r in rows if r.beats_baseline]
    if not winners:
        return Decision(lowest, None, None, *lowest.baseline)
    best, cheap = pick(winners)
    return Decision(lowest, best, cheap, *best.baseline)


def seq_len_flags(r: SweepRow) -> str:
    return f"--seq-len {r.seq_len}"


def as_words(flags: str) -> str:
    """'--seq-len 6 --cell gru' -> 'seq_len 6, cell gru', for prose."""
    return ", ".join(f.strip().replace("-", "_") for f in flags.split("--") if f.strip())


def decision_lines(d: Decision, flags: Callable[[SweepRow], str] = seq_len_flags) -> list[str]:
    """The verdict under the table: a recommendation, or a warning and what to try."""
    if d.recommended is None:
        low = d.lowest
        return [
            f"warning: no candidate beats the naive baseline: {d.baseline} has validation MAE "
            f"{d.baseline_mae:.4f}, the lowest model MAE is {low.val_mae:.4f} "
            f"({as_words(flags(low))}, {low.mode}); "
            f"no candidate is worth deploying yet",
            f"  advice: {ADVICE}",
        ]
    best, cheap = d.recommended, d.cheapest
    assert cheap is not None
    lines = [
        f"recommended: {flags(best)} (lowest validation MAE, {best.mode} "
        f"{best.val_mae:.4f}; naive baseline {d.baseline} {d.baseline_mae:.4f})"
    ]
    if cheap is best:
        lines.append(f"  it is also the cheapest within {WITHIN:.0%} of that MAE")
    else:
        lines.append(
            f"  cheapest within {WITHIN:.0%}: {flags(cheap)} (MAE {cheap.val_mae:.4f}, "
            f"{cheap.cost_us:.1f} vs {best.cost_us:.1f} µs/sample in {best.mode} mode)"
        )
    return lines


def fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def aligned(head: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    """Right-aligned columns at least 8 wide: header, rule, rows."""
    widths = [max(8, len(h) + 2, *(len(c) + 2 for c in cells)) for h, *cells in
              zip(head, *body, strict=True)]  # fmt: skip
    lines = ["".join(h.rjust(w) for h, w in zip(head, widths, strict=True)), "-" * sum(widths)]
    lines += ["".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)) for cells in body]
    return lines


def format_sweep(rows: Sequence[SweepRow]) -> str:
    head = ("seq_len", "val MAE win", "val MAE stream", "val MAE naive", "test MAE", "train s",
            "bundle KiB", "win µs/sample", "stream µs/sample")  # fmt: skip
    body = [(str(r.seq_len), fmt(r.val_mae_window, ".4f"), fmt(r.val_mae_stream, ".4f"),
             fmt(r.baseline[1], ".4f"), fmt(r.test_mae, ".4f"), fmt(r.train_seconds, ".1f"),
             fmt(r.bundle_bytes / 1024, ".1f"), fmt(r.window_us, ".1f"),
             fmt(r.stream_us, ".1f")) for r in rows]  # fmt: skip
    lines = [
        "sweep summary per seq_len (validation MAE on the origins all candidates forecast; "
        "naive: the better of persistence and seasonal_naive)",
        *aligned(head, body),
        *decision_lines(decide(rows)),
    ]
    return "\n".join(lines)
