"""The time axis of a training table: which grid its rows lie on, and the step of every row.

Timestamps are UTC: ISO 8601 strings with an offset are converted to UTC, strings without one
are read as UTC, numbers are Unix seconds. The grid is the `edge/timegrid.py` contract the device
uses: a fixed grid (seconds, minutes, hours, days, weeks) or a calendar grid of months (month,
quarter or year starts or ends). It is inferred from the timestamps or named with `--interval`
(a pandas offset alias such as `30min`, `1h`, `D`, `W-MON`, `MS`, `ME`, `QS`, `QE`, `YS`, `YE`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import numpy as np
import pandas as pd

from seqcast.edge.timegrid import DAY_S, Grid
from seqcast.train.options import DataError

RowName = Callable[[int], str]  # data row index (0-based, file order) -> "line 7" / "row 6"

INTERVAL_EXAMPLES = "e.g. 30min, 1h, D, W-MON, MS, ME, QS, QE, YS, YE"
ON_GRID_TOLERANCE_S = 1e-3
EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday (Monday = 0)


def csv_rows(i: int) -> str:
    """CSV with a header line: data row 0 is line 2 (assumes one line per row)."""
    return f"line {i + 2}"


def table_rows(i: int) -> str:
    """Parquet and built-in tables: rows counted from 1."""
    return f"row {i + 1}"


def parse_interval(text: str) -> Callable[[np.ndarray], Grid]:
    """`--interval` as a pandas offset alias -> a function of the sorted timestamps giving the grid
    (the phase of a fixed grid, or of an `n`-month grid without a named month, comes from the
    data). Raises DataError (one line) for anything that is not a fixed or month-based alias."""
    try:
        offset = pd.tseries.frequencies.to_offset(text)
    except (ValueError, TypeError) as e:
        hint = re.search(r"Did you mean (\S+?)\?|Please use '(\S+)' instead", str(e))
        did_you = f" (did you mean {hint.group(1) or hint.group(2)}?)" if hint else ""
        raise DataError(
            f"--interval: {text!r} is not a pandas offset alias{did_you}; {INTERVAL_EXAMPLES}"
        ) from None
    n = int(offset.n)
    if n < 1:
        raise DataError(f"--interval: {text!r} must be a positive interval")
    kind = type(offset).__name__
    if isinstance(offset, pd.offsets.Tick) or kind == "Day":
        seconds = n * DAY_S if kind == "Day" else pd.Timedelta(offset).total_seconds()
        return lambda times: Grid.fixed(seconds, float(times[0]))
    if kind == "Week":
        seconds = 7.0 * DAY_S * n
        if offset.weekday is None:
            return lambda times: Grid.fixed(seconds, float(times[0]))
        origin = ((offset.weekday - EPOCH_WEEKDAY) % 7) * DAY_S
        return lambda times: Grid.fixed(seconds, origin)
    month_kinds = {
        "MonthBegin": (1, "start", None),
        "MonthEnd": (1, "end", None),
        "QuarterBegin": (3, "start", getattr(offset, "startingMonth", 1)),
        "QuarterEnd": (3, "end", getattr(offset, "startingMonth", 12)),
        "YearBegin": (12, "start", getattr(offset, "month", 1)),
        "YearEnd": (12, "end", getattr(offset, "month", 12)),
    }
    if kind not in month_kinds:
        raise DataError(
            f"--interval: {text!r} ({kind}) is not supported: use a fixed interval (minutes, "
            f"hours, days, weeks) or month/quarter/year starts or ends; {INTERVAL_EXAMPLES}"
        )
    months_per_step, anchor, named_month = month_kinds[kind]
    step = months_per_step * n
    if named_month is not None:
        origin = int(named_month) - 1
        return lambda times: Grid.months(step, anchor, origin)
    return lambda times: Grid.months(step, anchor, month_index(times[:1])[0])


def month_index(times: np.ndarray) -> np.ndarray:
    """Months since 1970-01 of each (UTC) timestamp."""
    secs = np.floor(times).astype(np.int64).astype("datetime64[s]")
    return secs.astype("datetime64[M]").astype(np.int64)


def _month_start_s(months: np.ndarray) -> np.ndarray:
    return months.astype("datetime64[M]").astype("datetime64[s]").astype(np.int64).astype(float)


def infer_grid(times: np.ndarray) -> Grid:
    """The grid of sorted, distinct timestamps: calendar months when every row is midnight UTC on
    the first (or the last) day of a month, else the fixed grid of the most common step."""
    if len(times) < 2:
        raise DataError("need at least two distinct timestamps to infer the interval")
    months = month_index(times)
    at_midnight = bool(np.all(np.mod(times, DAY_S) == 0))
    for anchor in ("start", "end"):
        first_days = _month_start_s(months if anchor == "start" else months + 1)
        labels = first_days if anchor == "start" else first_days - DAY_S
        if at_midnight and np.array_equal(labels, times):
            n = int(np.gcd.reduce(np.diff(months)))
            return Grid.months(n, anchor, int(months[0]))
    diffs = np.round(np.diff(times), 6)
    values, counts = np.unique(diffs, return_counts=True)
    seconds = float(values[np.argmax(counts)])  # ties: the shorter step
    return Grid.fixed(seconds, float(times[0]))


def grid_steps(
    grid: Grid, times: np.ndarray, off_grid: Callable[[int, float], DataError]
) -> np.ndarray:
    """The step number of every timestamp on `grid` (int64); the first timestamp off the grid
    raises `off_grid(position, nearest_point)`."""
    if grid.unit == "second":
        steps = np.rint((times - grid.origin) / float(grid.n)).astype(np.int64)
        points = grid.origin + steps * float(grid.n)
    else:
        n, origin = int(grid.n), int(grid.origin)
        months = month_index(times)
        if grid.anchor == "end":  # a month's point is its last day: before it, last month's
            before = times < _month_start_s(months + 1) - DAY_S
            months = months - before
        steps = np.floor_divide(months - origin, n)
        on = origin + steps * n
        points = _month_start_s(on) if grid.anchor == "start" else _month_start_s(on + 1) - DAY_S
    off = np.abs(points - times) > ON_GRID_TOLERANCE_S
    if off.any():
        i = int(np.flatnonzero(off)[0])
        raise off_grid(i, float(points[i]))
    return steps


def iso(ts: float) -> str:
    """A UTC timestamp as ISO 8601 (seconds; date only at midnight)."""
    t = pd.Timestamp(ts, unit="s", tz="UTC")
    if t == t.normalize():
        return t.strftime("%Y-%m-%d")
    return t.strftime("%Y-%m-%dT%H:%M:%SZ") if ts == math.floor(ts) else t.isoformat()


def describe(grid: Grid) -> str:
    """`1 h grid (points at :30)`, `month (start) grid`, ... for messages and the report."""
    if grid.unit == "month":
        return f"{grid.describe()} grid"
    offset = f" (offset {_duration(grid.origin)})" if grid.origin else ""
    return f"{_duration(float(grid.n))} grid{offset}"


def _duration(s: float) -> str:
    for unit, size in (("week", 7 * DAY_S), ("d", DAY_S), ("h", 3600), ("min", 60)):
        if s >= size and s % size == 0:
            return f"{s / size:g} {unit}"
    return f"{s:g} s"


def check_off_grid_hint(grid: Grid) -> str:
    """Extra advice when a row is off an inferred grid."""
    if grid.unit == "second" and 28 * DAY_S <= float(grid.n) <= 31 * DAY_S:
        return "; monthly data must be stamped 00:00 UTC on the first (MS) or last (ME) day"
    return "; pass --interval, or resample the data first"
