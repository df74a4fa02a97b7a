"""`auto`'s search plan: the candidate grid (seq_len x cell x units), the order that buys
the most information first, each candidate's predicted time, and the budget loop that never
starts a candidate predicted to overrun.

Time model: a streaming epoch steps over about 8 x the training rows whatever seq_len is
(sequences of 4 x seq_len at a stride of an eighth of that, see fit._train), so an epoch's
cost follows the cost of one training batch of the candidate's architecture (`auto` measures
it: train/candidate.py `batch_seconds`; small recurrent layers on a CPU are dominated by
per-step overhead, so their multiply-adds, `work`, would overstate the gaps). A candidate's
time is predicted from the trained one nearest in that cost: its seconds per epoch scaled by
the cost ratio, times the mean epochs run so far, plus the mean fixed cost (conversion,
scoring, timing). The first candidate has nothing to be predicted from: it always runs (the
cheapest, first in the order).

No TensorFlow here: the CLI plans (and so checks the data and options) before importing it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from seqcast.edge.timegrid import Grid
from seqcast.train.compare import SweepRow
from seqcast.train.evaluate import default_season
from seqcast.train.options import DataError, FitOptions
from seqcast.train.prepare import Prepared, load_series, prepare

GATES = {"gru": 3, "lstm": 4}
Cost = Callable[["Candidate"], float]  # relative seconds per training epoch
DEFAULT_CELLS = ("gru", "lstm")
DEFAULT_UNITS = (32, 64)
LONGEST_DEFAULT_SEQ_LEN = 192  # a 5-minute series' day would be 288 steps: too slow to try
NO_SEASON_SEQ_LENS = (12, 24)


@dataclass(frozen=True)
class Space:
    """The grid asked for; None: derived from the data (seq_len) or the defaults."""

    seq_lens: Sequence[int] | None = None
    cells: Sequence[str] | None = None
    units: Sequence[int] | None = None


@dataclass(frozen=True)
class Candidate:
    seq_len: int
    cell: str
    units: tuple[int, ...]

    @property
    def slug(self) -> str:
        """A file name part: gru32-seq48."""
        return f"{self.cell}{'x'.join(map(str, self.units))}-seq{self.seq_len}"

    @property
    def label(self) -> str:
        return f"{self.cell} {','.join(map(str, self.units))} seq_len {self.seq_len}"

    @property
    def flags(self) -> str:
        units = ",".join(map(str, self.units))
        return f"--seq-len {self.seq_len} --cell {self.cell} --units {units}"

    @classmethod
    def of(cls, row: SweepRow) -> Candidate:
        return cls(row.seq_len, row.cell, tuple(row.units))


def row_flags(row: SweepRow) -> str:
    return Candidate.of(row).flags


def default_seq_lens(grid: Grid) -> tuple[int, ...]:
    """One and two seasons (a day of sub-daily steps, a week of daily ones, a year of months),
    at most LONGEST_DEFAULT_SEQ_LEN; NO_SEASON_SEQ_LENS when the grid has no season."""
    season = default_season(grid)
    if season < 2:
        return NO_SEASON_SEQ_LENS
    lens = sorted({min(season, LONGEST_DEFAULT_SEQ_LEN), min(2 * season, LONGEST_DEFAULT_SEQ_LEN)})
    if len(lens) == 1:  # both capped
        lens.insert(0, LONGEST_DEFAULT_SEQ_LEN // 2)
    return tuple(lens)


def build_grid(
    seq_lens: Sequence[int], cells: Sequence[str], units: Sequence[int]
) -> list[Candidate]:
    """Every combination, each width a single recurrent layer; bad values are one DataError."""
    if not seq_lens or min(seq_lens) < 1:
        raise DataError(f"--seq-lens: need lengths >= 1, got {list(seq_lens)}")
    if not cells or any(c not in GATES for c in cells):
        raise DataError(f"--cells: choose from {', '.join(GATES)}, got {list(cells)}")
    if not units or min(units) < 1:
        raise DataError(f"--units: need widths >= 1, got {list(units)}")
    return [
        Candidate(L, c, (u,))
        for L in sorted(set(seq_lens))
        for c in dict.fromkeys(cells)
        for u in sorted(set(units))
    ]


def check_budget(minutes: float) -> None:
    if not (minutes > 0 and math.isfinite(minutes)):
        raise DataError(f"--budget: must be a number of minutes above 0, got {minutes:g}")


def plan_for(options: FitOptions, space: Space) -> tuple[list[Candidate], Prepared]:
    """The ordered candidates, and the longest one's prepared data: the data and the options
    are checked before anything trains."""
    seq_lens = space.seq_lens or default_seq_lens(load_series(options).grid)
    cands = build_grid(seq_lens, space.cells or DEFAULT_CELLS, space.units or DEFAULT_UNITS)
    first = cands[0]
    longest, shortest = max(c.seq_len for c in cands), min(c.seq_len for c in cands)
    if options.min_history is not None and options.min_history > shortest:
        raise DataError(
            f"--min-history must be 1..the shortest of --seq-lens ({shortest}), "
            f"got {options.min_history}"
        )
    checked = prepare(replace(options, seq_len=longest, cell=first.cell, units=first.units))
    width = len(checked.series.feature_names) + 2 * len(checked.calendar)
    anchor = Candidate(shortest, options.cell, tuple(options.units))
    return order(cands, width, options.mode == "window", anchor), checked


def work(c: Candidate, width: int, window_mode: bool = False) -> float:
    """Recurrent multiply-adds per time step (times seq_len in window mode, whose epoch steps
    over every window)."""
    total, inputs = 0, width
    for u in c.units:
        total += GATES[c.cell] * u * (u + inputs)
        inputs = u
    return float(total * (c.seq_len if window_mode else 1))


def order(
    cands: Sequence[Candidate],
    width: int,
    window_mode: bool = False,
    anchor: Candidate | None = None,
) -> list[Candidate]:
    """`anchor` first when the grid holds it (`plan_for` passes the trainer's own architecture
    at the shortest seq_len, so `auto` never ends below what `fit` would have trained), else
    the cheapest candidate; then those that change one choice from it, then two...; cheaper
    first within each tier. So a small budget still sees every axis move once before it spends
    on combinations."""
    if anchor not in cands:
        anchor = Candidate(
            min(c.seq_len for c in cands),
            min((c.cell for c in cands), key=lambda cell: GATES[cell]),
            min((c.units for c in cands), key=sum),
        )

    def tier(c: Candidate) -> int:
        return (c.seq_len != anchor.seq_len) + (c.cell != anchor.cell) + (c.units != anchor.units)

    return sorted(cands, key=lambda c: (tier(c), work(c, width, window_mode), c.seq_len))


def predict_seconds(c: Candidate, done: Sequence[SweepRow], cost: Cost) -> float | None:
    """Predicted wall seconds of `c` from the candidates already trained; None before the first."""
    if not done:
        return None
    w = cost(c)

    def distance(r: SweepRow) -> tuple[float, int]:
        return abs(math.log(w / cost(Candidate.of(r)))), abs(r.seq_len - c.seq_len)

    near = min(done, key=distance)
    per_epoch = near.train_seconds / max(1, near.epochs_run)
    per_epoch *= w / cost(Candidate.of(near))
    epochs = sum(r.epochs_run for r in done) / len(done)
    fixed = sum(max(0.0, r.seconds - r.train_seconds) for r in done) / len(done)
    return fixed + epochs * per_epoch


@dataclass(frozen=True)
class Skipped:
    candidate: Candidate
    predicted_s: float
    left_s: float

    def line(self) -> str:
        return (
            f"skipped {self.candidate.label}: predicted {self.predicted_s:.0f} s, "
            f"{max(0.0, self.left_s):.0f} s of the budget left"
        )


@dataclass(frozen=True)
class Outcome:
    rows: list[SweepRow]  # in the order trained
    skipped: list[Skipped]
    predicted: dict[Candidate, float | None]  # what each trained candidate was predicted to take
    elapsed_s: float
    budget_s: float

    @property
    def overran(self) -> bool:
        return self.elapsed_s > self.budget_s


def run_budget(
    plan: Sequence[Candidate],
    budget_s: float,
    train: Callable[[Candidate, int], SweepRow],
    cost: Cost,
    clock: Callable[[], float] = time.monotonic,
    started: float | None = None,
) -> Outcome:
    """Train `plan` in order, skipping each candidate predicted to end after the budget;
    `train(candidate, number)` trains one (number counts from 1) and returns its row; `cost`
    gives each candidate's relative seconds per epoch; the budget runs from `started` (default:
    now)."""
    check_budget(budget_s / 60)
    start = clock() if started is None else started
    rows: list[SweepRow] = []
    skipped: list[Skipped] = []
    predicted: dict[Candidate, float | None] = {}
    for c in plan:
        left = budget_s - (clock() - start)
        guess = predict_seconds(c, rows, cost)
        if guess is not None and guess > left:
            skipped.append(Skipped(c, guess, left))
            continue
        predicted[c] = guess
        rows.append(train(c, len(rows) + 1))
    return Outcome(rows, skipped, predicted, clock() - start, budget_s)
