"""Issue 10, calendar grids on the device: a monthly bundle (AirPassengers, one epoch) stamps its
forecasts on month starts, takes the mean of mid-month samples labelled on the 1st, and steps a
fillable hole of three months at once (the jump guard's threshold counts the aligner's fill),
through the real interpreter and a real mosquitto.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.daemon_harness import offline_forecasts
from tests.test_time_parity import Forecast, Sample, Served, check, serve

pytestmark = [pytest.mark.broker, pytest.mark.tflite, pytest.mark.slow]

MONTHS_FROM = "2023-02-01"  # the monthly streams' first month


@pytest.fixture(scope="module")
def monthly_bundle(tmp_path_factory) -> Path:
    """A tiny monthly bundle on AirPassengers (month starts), one epoch: a few seconds."""
    from tsdata.fpppy import AirPassengers

    from seqcast.train.fit import FitOptions, fit

    tmp = tmp_path_factory.mktemp("monthly")
    AirPassengers.to_csv(tmp / "air.csv", index=False)
    o = FitOptions(
        data=str(tmp / "air.csv"), time_col="ds", features=["y"], targets=["y"], seq_len=12,
        horizon=3, out=str(tmp / "air.seqcast"), units=(4,), epochs=1, batch_size=64,
        report=False, patience=1, baselines="naive",
    )  # fmt: skip
    return fit(o).bundle.path


def month_starts(first: str, n: int, day: int = 1, hour: int = 0) -> list[float]:
    import pandas as pd

    start = pd.Timestamp(first, tz="UTC")
    return [
        (start + pd.DateOffset(months=i, days=day - 1, hours=hour)).timestamp() for i in range(n)
    ]


def add_months(ts: float, k: int) -> float:
    import pandas as pd

    return (pd.Timestamp(ts, unit="s", tz="UTC") + pd.DateOffset(months=k)).timestamp()


def air_values(n: int) -> list[float]:
    from tsdata.fpppy import AirPassengers

    return [float(v) for v in AirPassengers["y"].to_numpy()[-n:]]


def y_payload(ts: float, v: list[float]) -> bytes:
    return json.dumps({"ts": ts, "y": v[0]}).encode()


N_MONTHS = 17  # 2023-02 .. 2024-06: the first forecast is made at 2024-01-01 (min_history 12)


def monthly() -> list[Sample]:
    """One sample a month, on its first day at 00:00 UTC (on the grid)."""
    starts = month_starts(MONTHS_FROM, N_MONTHS)
    return [(ts, [v]) for ts, v in zip(starts, air_values(N_MONTHS), strict=True)]


def mid_month() -> list[Sample]:
    """Two samples a month, on the 5th and the 20th at noon, values a little apart."""
    fifth, twentieth = (month_starts(MONTHS_FROM, N_MONTHS, day, 12) for day in (5, 20))
    out = []
    for a, b, v in zip(fifth, twentieth, air_values(N_MONTHS), strict=True):
        out += [(a, [v - 10.0]), (b, [v + 14.0])]
    return out


@pytest.fixture(scope="module")
def calendar_run(broker, monthly_bundle, tmp_path_factory) -> Served:
    mid = mid_month()
    streams = {
        "m": monthly(),
        "mid": [*mid, (month_starts(MONTHS_FROM, N_MONTHS + 1, 3)[-1], mid[-1][1])],
    }
    return serve(
        broker, monthly_bundle, tmp_path_factory.mktemp("cal"), streams,
        {"m": N_MONTHS - 12 + 1, "mid": N_MONTHS - 12 + 1},  # min_history 12
        pay=y_payload,
    )  # fmt: skip


def monthly_want(bundle: Path, samples: list[Sample]) -> list[Forecast]:
    """offline_forecasts' values, its rows restamped on calendar months (it adds interval_s)."""
    return [
        (ts, [[add_months(ts, k + 1), *row[1:]] for k, row in enumerate(rows)])
        for ts, rows in offline_forecasts(bundle, samples, "stream")
    ]


def test_a_monthly_bundle_stamps_forecasts_on_month_starts(calendar_run, monthly_bundle):
    import pandas as pd

    want = monthly_want(monthly_bundle, monthly())
    jan = pd.Timestamp("2024-01-01", tz="UTC").timestamp()
    assert want[0][0] == jan
    check(calendar_run, "m", want)
    rows = calendar_run.forecasts["m"][jan]
    assert [pd.Timestamp(r[0], unit="s", tz="UTC").strftime("%Y-%m-%d") for r in rows] == [
        "2024-02-01",
        "2024-03-01",
        "2024-04-01",
    ]  # not 2024-01-31T10:29:06 (+30.44 days)


def test_mid_month_samples_give_the_months_mean_labelled_on_its_first_day(
    calendar_run, monthly_bundle
):
    import pandas as pd

    idx = pd.to_datetime([ts for ts, _ in mid_month()], unit="s", utc=True)
    monthly = pd.Series([v[0] for _, v in mid_month()], index=idx).resample("MS").mean()
    frame = [
        (t.timestamp(), [float(v)]) for t, v in zip(monthly.index, monthly.to_numpy(), strict=True)
    ]
    assert [ts for ts, _ in frame] == month_starts(MONTHS_FROM, N_MONTHS)
    check(calendar_run, "mid", monthly_want(monthly_bundle, frame))


def test_a_monthly_stream_resuming_after_a_fillable_hole_is_forecast_at_once(monthly_bundle):
    """Aug, Sep and Oct missing (3 <= max_fill): the Nov 1 sample should step the three filled
    months and itself at once, as an on-grid stream's samples are (no broker: the pipeline)."""
    import pandas as pd

    from seqcast.edge.config import StreamsConfig
    from seqcast.edge.model.bundle import read_bundle
    from seqcast.edge.model.runtime import load_model
    from seqcast.edge.path.pipeline import Pipeline

    model, _ = load_model(read_bundle(monthly_bundle))
    pipeline = Pipeline(model, streams=StreamsConfig(reorder_s=0.0))
    months = month_starts("2022-07-01", 13)  # 2022-07 .. 2023-07: forecasts from 2023-06 on
    for ts, v in zip(months, air_values(13), strict=True):
        pipeline.step([("m", ts, (v,))])
    nov = pd.Timestamp("2023-11-01", tz="UTC").timestamp()
    out = pipeline.step([("m", nov, (air_values(1)[0],))]) + pipeline.tick()[0]
    assert [json.loads(p)["ts"] for _, p in out] == month_starts("2023-08-01", 4)
