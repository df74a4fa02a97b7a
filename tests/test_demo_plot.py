"""The demo's forecast-vs-actual plot: a dated axis that shows the year, a legend off the data."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

pytest.importorskip("matplotlib")

from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402

from seqcast.tools.demo import forecast_figure, plot  # noqa: E402
from seqcast.tools.replay import Row  # noqa: E402

STEP_S = 1800.0
START = datetime(2013, 12, 30, tzinfo=UTC).timestamp()  # crosses into 2014


def rows_and_forecasts(days: float = 3.0, horizon: int = 4) -> tuple[list[Row], list[dict]]:
    n = int(days * 86400 / STEP_S)
    rows = [
        Row("meter", START + i * STEP_S, {"demand": 4000.0 + (i % 48) * 20.0}) for i in range(n)
    ]
    forecasts = [
        {
            "stream": "meter-1",
            "ts": r.ts,
            "forecast": [
                {"ts": r.ts + k * STEP_S, "demand": r.values["demand"] + 10.0 * k}
                for k in range(1, horizon + 1)
            ],
        }
        for r in rows[:-horizon]
    ]
    other = {**forecasts[0], "stream": "meter-2"}  # another meter's forecasts are left out
    return rows, [*forecasts, other]


def test_plot_writes_a_png(tmp_path):
    rows, forecasts = rows_and_forecasts()
    out = tmp_path / "sub" / "demo.png"
    assert plot(forecasts, rows, "meter-1", "demand", out)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_plot_without_forecasts_for_the_stream_still_draws_the_actuals(tmp_path):
    rows, _ = rows_and_forecasts(days=1.0)
    assert plot([], rows, "meter-1", "demand", tmp_path / "demo.png")


def test_time_axis_shows_the_year_and_the_legend_is_off_the_data():
    rows, forecasts = rows_and_forecasts()
    fig = forecast_figure(forecasts, rows, "meter-1", "demand")
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    (ax,) = fig.axes

    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert any(re.search(r"\b(2013|2014)\b", text) for text in labels), labels
    assert ax.xaxis.get_label().get_text() == "time (UTC)"

    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == [
        "actual",
        "forecast +1 step",
        "forecast +4 step",
    ]
    box = legend.get_window_extent(renderer)
    assert not box.overlaps(ax.get_window_extent(renderer))  # outside the axes, so off the data
    for line in ax.get_lines():
        assert not box.overlaps(line.get_window_extent(renderer))
    assert fig.bbox.contains(box.x1 - 1, box.y0 + 1)  # and not cut off by the figure's edge
