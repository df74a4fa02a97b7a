"""Calendar features: where a step falls in the day, the week and the year, as sin/cos pairs.

A bundle lists the ones its model reads (`Manifest.calendar`); the trainer appends them to the
scaled features of every step, and the device computes them from the step's timestamp (the grid
label when aligned), with this one function on both sides, so they agree to the bit.

Phases are taken in UTC. A model only needs the cycle, not where it starts: a local-time cycle
is the UTC one rotated, which a sin/cos pair represents exactly (daylight saving time shifts
the daily cycle by an hour for part of the year: a small error, not a different cycle).

- `hour_of_day`: seconds since midnight / 86400.
- `day_of_week`: days since Monday 00:00 / 7.
- `day_of_year`: time since 1 January 1970 modulo the mean Gregorian year (365.2425 days),
  which never drifts from the calendar by more than a day.
- `month_of_year`: the calendar month (January 0 ... December 11) / 12, exact for monthly data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from seqcast.edge.timegrid import Grid

DAY_S = 86400.0
YEAR_S = 365.2425 * DAY_S
NAMES = ("hour_of_day", "day_of_week", "day_of_year", "month_of_year")
THURSDAY = 3.0  # 1 January 1970 was a Thursday: days since a Monday


class CalendarError(ValueError):
    pass


def _phase(name: str, ts: np.ndarray) -> np.ndarray:
    """(n,) seconds -> (n,) phase in [0, 1)."""
    if name == "hour_of_day":
        return np.asarray(np.mod(ts, DAY_S) / DAY_S, np.float64)
    if name == "day_of_week":
        return np.asarray(np.mod(ts / DAY_S + THURSDAY, 7.0) / 7.0, np.float64)
    if name == "day_of_year":
        return np.asarray(np.mod(ts, YEAR_S) / YEAR_S, np.float64)
    if name == "month_of_year":
        months = np.floor(ts).astype("datetime64[s]").astype("datetime64[M]").astype(np.int64)
        return np.asarray(np.mod(months, 12) / 12.0, np.float64)
    raise _unknown(name)


def _unknown(name: str) -> CalendarError:
    return CalendarError(f"unknown calendar feature {name!r} (known: {', '.join(NAMES)})")


def width(names: Sequence[str]) -> int:
    """Model input columns the calendar features take."""
    return 2 * len(names)


def columns(names: Sequence[str], ts: np.ndarray) -> np.ndarray:
    """Step timestamps (n,) in Unix seconds -> (n, 2 * len(names)) float32: sin, cos of each."""
    ts = np.asarray(ts, np.float64)
    out = np.empty((len(ts), width(names)), np.float32)
    for i, name in enumerate(names):
        angle = 2.0 * math.pi * _phase(name, ts)
        out[:, 2 * i] = np.sin(angle)
        out[:, 2 * i + 1] = np.cos(angle)
    return out


def column_names(names: Sequence[str]) -> list[str]:
    return [f"{name}_{f}" for name in names for f in ("sin", "cos")]


def check(names: Sequence[str]) -> tuple[str, ...]:
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        raise _unknown(unknown[0])
    if len(set(names)) != len(names):
        raise CalendarError(f"calendar features listed twice in {list(names)}")
    return tuple(names)


def auto(grid: Grid, span_s: float) -> tuple[str, ...]:
    """The cycles a series on `grid` covering `span_s` seconds can show: the day below daily
    steps, the week below weekly ones, the year when at least two years are there to learn it
    (month of year for monthly and quarterly data)."""
    two_years = span_s >= 2 * YEAR_S
    if grid.calendar:
        return ("month_of_year",) if int(grid.n) < 12 and two_years else ()
    step = grid.interval_s
    out: list[str] = []
    if step < DAY_S:
        out.append("hour_of_day")
    if step < 7 * DAY_S:
        out.append("day_of_week")
    if two_years:
        out.append("day_of_year")
    return tuple(out)
