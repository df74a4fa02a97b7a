"""The model's time grid: where its steps fall, shared by the trainer and the device.

A bundle's manifest records its interval twice: `interval_s` (nominal seconds, for rules such as
`max_gap`) and `grid`, the exact points a step falls on, in one of two forms:

- fixed: `{"unit": "second", "n": 1800, "origin": 1388534400.0}`: points `origin + k * n`
  (minutes, hours, days and weeks are fixed lengths in UTC; `origin` fixes the phase, e.g.
  weeks starting on a Monday);
- calendar: `{"unit": "month", "n": 1, "anchor": "start", "origin": 648}`: every `n` months
  counted from month `origin` (months since 1970-01, so 648 is 2024-01), on the first day of the
  month at 00:00 UTC (`anchor = "start"`, pandas `MS`/`QS`/`YS`) or its last day at 00:00 UTC
  (`"end"`, pandas `ME`/`QE`/`YE`). Quarters are n = 3, years n = 12.

Stepped with numpy's datetime64 months on the device (no pandas): one month after 2024-01-01 is
2024-02-01. A bucket covers `[point(k), point(k + 1))` and is labelled `point(k)` (pandas'
default for resampling), so `floor` maps any timestamp to its bucket's label.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

MONTH_S = 30.436875 * 86400  # the mean Gregorian month: the nominal `interval_s` of a month
DAY_S = 86400


class GridError(ValueError):
    pass


def _month_of(ts: float) -> int:
    """Months since 1970-01 of the UTC month that contains `ts`."""
    return int(np.datetime64(math.floor(ts), "s").astype("datetime64[M]").astype(np.int64))


def _month_start(month: int) -> float:
    return float(np.datetime64(month, "M").astype("datetime64[s]").astype(np.int64))


@dataclass(frozen=True)
class Grid:
    unit: Literal["second", "month"]
    n: int | float  # seconds (may be fractional) or months
    anchor: Literal["start", "end"] = "start"
    origin: float = 0.0  # fixed: a point's timestamp; month: a point's month index

    # -- manifest form --------------------------------------------------------------------------
    @classmethod
    def fixed(cls, seconds: float, origin: float = 0.0) -> Grid:
        if not (seconds > 0 and math.isfinite(seconds)):
            raise GridError(f"grid: interval must be > 0 s, got {seconds}")
        return cls("second", seconds, "start", float(origin) % seconds)

    @classmethod
    def months(cls, n: int, anchor: Literal["start", "end"], origin: int = 0) -> Grid:
        if int(n) != n or n < 1:
            raise GridError(f"grid: a calendar interval is a whole number of months, got {n}")
        if anchor not in ("start", "end"):
            raise GridError(f"grid.anchor: 'start' or 'end', got {anchor!r}")
        return cls("month", int(n), anchor, float(int(origin) % int(n)))

    @classmethod
    def from_json(cls, d: dict[str, Any] | None, interval_s: float) -> Grid:
        """The manifest's `grid`; a bundle without one has the fixed grid of `interval_s`."""
        if d is None:
            return cls.fixed(interval_s)
        try:
            unit = d["unit"]
            if unit == "second":
                return cls.fixed(float(d["n"]), float(d.get("origin", 0.0)))
            if unit == "month":
                return cls.months(int(d["n"]), d.get("anchor", "start"), int(d.get("origin", 0)))
        except (KeyError, TypeError, ValueError) as e:
            raise GridError(f"grid: malformed ({e})") from None
        raise GridError(f"grid.unit: 'second' or 'month', got {unit!r}")

    def to_json(self) -> dict[str, Any]:
        if self.unit == "second":
            return {"unit": "second", "n": self.n, "origin": self.origin}
        return {"unit": "month", "n": self.n, "anchor": self.anchor, "origin": int(self.origin)}

    @property
    def interval_s(self) -> float:
        """Nominal length of a step in seconds (a month: the mean Gregorian month)."""
        return float(self.n) if self.unit == "second" else float(self.n) * MONTH_S

    @property
    def calendar(self) -> bool:
        return self.unit == "month"

    def describe(self) -> str:
        if self.unit == "second":
            return f"{self.n:g} s"
        what = {1: "month", 3: "quarter", 12: "year"}.get(int(self.n), f"{self.n} months")
        return f"{what} ({self.anchor})"

    # -- points -----------------------------------------------------------------------------------
    def index(self, ts: float) -> int:
        """The step whose bucket holds `ts`: point(index(ts)) <= ts < point(index(ts) + 1)."""
        if self.unit == "second":
            return math.floor((ts - self.origin) / self.n + 1e-9)  # on-grid float noise
        n, m = int(self.n), _month_of(ts)
        if self.anchor == "end" and self._month_point(m) > ts:
            m -= 1  # before this month's last day: the bucket opened at last month's end
        return (m - int(self.origin)) // n

    def point(self, k: int) -> float:
        """The timestamp of step `k`."""
        if self.unit == "second":
            return self.origin + k * float(self.n)
        return self._month_point(int(self.origin) + k * int(self.n))

    def _month_point(self, month: int) -> float:
        if self.anchor == "start":
            return _month_start(month)
        return _month_start(month + 1) - DAY_S

    def floor(self, ts: float) -> float:
        """The label of the bucket holding `ts`."""
        return self.point(self.index(ts))

    def shift(self, ts: float, k: int) -> float:
        """`k` steps after the bucket of `ts` (ts itself when it is on the grid and k = 0)."""
        return self.point(self.index(ts) + k)

    def on_grid(self, ts: float, tolerance_s: float = 1e-6) -> bool:
        return abs(self.floor(ts + tolerance_s) - ts) <= tolerance_s
