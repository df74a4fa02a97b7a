"""Calendar features (edge/calendar.py) against an independent datetime computation."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from seqcast.edge import calendar as C
from seqcast.edge.timegrid import Grid
from tests.daemon_harness import calendar_by_hand

TS = st.floats(0, 4e9, allow_nan=False)  # 1970 .. 2096


@given(TS)
@pytest.mark.parametrize("name", ["hour_of_day", "day_of_week", "month_of_year"])
def test_phases_match_the_calendar(name: str, ts: float) -> None:
    got = C.columns([name], np.array([ts]))[0]
    want = calendar_by_hand([name], [ts])[0]
    assert got[0] == pytest.approx(want[0], abs=1e-5)
    assert got[1] == pytest.approx(want[1], abs=1e-5)


@given(TS)
def test_day_of_year_stays_within_a_day_of_the_calendar(ts: float) -> None:
    d = datetime.fromtimestamp(ts, UTC)
    start = datetime(d.year, 1, 1, tzinfo=UTC).timestamp()
    calendar_days = (ts - start) / 86400
    phase_days = math.fmod(ts, C.YEAR_S) / 86400
    diff = (phase_days - calendar_days + 182) % 365.2425 - 182
    assert abs(diff) < 1.5


def test_columns_are_sin_cos_pairs_in_the_order_given() -> None:
    ts = np.array([0.0, 6 * 3600.0, 1.7e9])
    got = C.columns(["day_of_week", "hour_of_day"], ts)
    assert got.shape == (3, 4) and got.dtype == np.float32
    np.testing.assert_allclose(got[:, 0] ** 2 + got[:, 1] ** 2, 1.0, rtol=1e-6)
    np.testing.assert_allclose(got[1, 2:], [1.0, 0.0], atol=1e-6)  # 06:00: a quarter of the day
    assert C.column_names(["hour_of_day"]) == ["hour_of_day_sin", "hour_of_day_cos"]


def test_unknown_or_repeated_names_are_refused() -> None:
    with pytest.raises(C.CalendarError, match="unknown calendar feature 'hour'"):
        C.check(["hour"])
    with pytest.raises(C.CalendarError, match="twice"):
        C.check(["day_of_week", "day_of_week"])
    assert C.check(["day_of_year"]) == ("day_of_year",)


@pytest.mark.parametrize(
    ("grid", "years", "want"),
    [
        (Grid.fixed(1800), 3, ("hour_of_day", "day_of_week", "day_of_year")),
        (Grid.fixed(3600), 1, ("hour_of_day", "day_of_week")),
        (Grid.fixed(86400), 5, ("day_of_week", "day_of_year")),
        (Grid.fixed(7 * 86400), 5, ("day_of_year",)),
        (Grid.months(1, "start"), 10, ("month_of_year",)),
        (Grid.months(3, "end"), 10, ("month_of_year",)),
        (Grid.months(12, "start"), 30, ()),
        (Grid.months(1, "start"), 1, ()),
    ],
)
def test_auto_picks_the_cycles_the_data_can_show(grid: Grid, years: int, want: tuple) -> None:
    assert C.auto(grid, years * C.YEAR_S) == want
