"""Real-world time on the trainer side: calendar grids, holes as segments, duplicates, and errors
that name the file line and the column. The tests that fit a model are marked `tflite`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pd = pytest.importorskip("pandas")  # the train extra; edge-only installs skip this module

from seqcast.edge.timegrid import Grid  # noqa: E402
from seqcast.train import data as D  # noqa: E402
from seqcast.train.cli import main  # noqa: E402
from seqcast.train.evaluate import default_season  # noqa: E402
from seqcast.train.gaps import TimeStats  # noqa: E402
from seqcast.train.report import forecast_times  # noqa: E402
from seqcast.train.timeaxis import parse_interval  # noqa: E402
from seqcast.train.windows import segment_sequences, window_origins, windows  # noqa: E402
from tests.synth import synthetic_frame  # noqa: E402

pytestmark = pytest.mark.train

HOURLY_HOLES = {300: 5, 520: 6, 800: 5, 1010: 6, 1120: 5}  # first missing row -> hole length


def _frame(freq: str, n: int = 40, start: str = "2001-01-01") -> pd.DataFrame:
    t = pd.date_range(start, periods=n, freq=freq, tz="UTC")
    v = np.sin(np.arange(n) / 3.0) + np.arange(n) / n
    return pd.DataFrame({"time": t.strftime("%Y-%m-%dT%H:%M:%SZ"), "v": v})


def _prepare(df: pd.DataFrame, **kw) -> D.Series:
    return D.prepare(df, "time", ["v"], ["v"], **kw)


def _hourly_with_holes(n: int = 1300) -> pd.DataFrame:
    """Hourly weather-like data on :30 with 5-6 hour holes (a logger that drops out)."""
    df = synthetic_frame(n, interval_s=3600.0)
    df["time"] = pd.to_datetime(
        1_699_999_200 + 1800 + 3600 * np.arange(n), unit="s", utc=True
    ).strftime("%Y-%m-%dT%H:%M:%SZ")
    drop = [r for first, k in HOURLY_HOLES.items() for r in range(first, first + k)]
    return df.drop(index=drop)


def _utc(ts: np.ndarray) -> pd.DatetimeIndex:
    return pd.to_datetime(np.asarray(ts), unit="s", utc=True)


# -- grids ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("freq", "n", "anchor", "origin"),
    [
        ("MS", 1, "start", 0),
        ("ME", 1, "end", 0),
        ("QS", 3, "start", 0),
        ("QS-FEB", 3, "start", 1),
        ("QE", 3, "end", 2),  # quarters ending in March: months 2, 5, 8, 11
        ("YS", 12, "start", 0),
        ("YE", 12, "end", 11),
    ],
)
def test_calendar_grids_are_inferred(freq, n, anchor, origin):
    s = _prepare(_frame(freq))
    assert s.grid == Grid.months(n, anchor, origin)
    assert s.grid.interval_s == pytest.approx(n * 30.436875 * 86400)
    assert parse_interval(freq)(s.times) == s.grid  # --interval names the same grid
    assert len(s) == 40 and s.segment_starts.tolist() == [0]


def test_real_monthly_and_quarterly_series():
    from tsdata.fpppy import AirPassengers, aus_production

    air = D.prepare(AirPassengers, "ds", ["y"], ["y"])
    assert air.grid == Grid.months(1, "start", 0) and len(air) == 144
    assert _utc(air.times[[0, 1, -1]]).strftime("%Y-%m-%d").tolist() == [
        "1949-01-01",
        "1949-02-01",
        "1960-12-01",
    ]
    beer = D.prepare(aus_production, "ds", ["Beer"], ["Beer"])
    assert beer.grid == Grid.months(3, "start", 0) and len(beer) == len(aus_production)


def test_fixed_grids_take_their_phase_from_the_data():
    assert _prepare(_frame("30min")).grid == Grid.fixed(1800, 0)
    on_half_hour = _prepare(_frame("h", start="2024-03-01 00:30"))
    assert on_half_hour.grid == Grid.fixed(3600, 1800)
    weekly = _prepare(_frame("W-MON"))
    assert weekly.grid.n == 7 * 86400 and _utc(weekly.times).day_of_week.unique().tolist() == [0]
    assert parse_interval("W-MON")(weekly.times) == weekly.grid


def test_timestamps_with_offsets_are_utc():
    df = _frame("h", n=30)
    df["time"] = pd.to_datetime(df["time"]).dt.tz_convert("Europe/Berlin").astype(str)
    s = _prepare(df)  # +01:00 strings land on the UTC hour grid
    assert s.grid == Grid.fixed(3600, 0) and _utc(s.times[:1])[0].hour == 0


@pytest.mark.parametrize(
    ("grid", "season"),
    [
        (Grid.months(1, "start"), 12),
        (Grid.months(3, "end"), 4),
        (Grid.months(12, "start"), 1),
        (Grid.fixed(86400), 7),
        (Grid.fixed(3600), 24),
        (Grid.fixed(1800), 48),
    ],
)
def test_default_season_follows_the_calendar(grid, season):
    assert default_season(grid) == season


def test_forecast_times_follow_the_calendar():
    g = Grid.months(1, "start", 0)
    jan = pd.Timestamp("2024-01-01", tz="UTC").timestamp()
    got = _utc(forecast_times(g, np.array([jan]), 1)).strftime("%Y-%m-%d").tolist()
    assert got == ["2024-02-01"]
    end = Grid.months(1, "end", 0)
    jan31 = pd.Timestamp("2024-01-31", tz="UTC").timestamp()
    assert _utc(forecast_times(end, np.array([jan31]), 1))[0].strftime("%m-%d") == "02-29"


# -- holes and segments --------------------------------------------------------------------------
def test_short_hole_in_monthly_data_is_filled_long_one_splits():
    df = _frame("MS", n=60)
    s = _prepare(df.drop(index=[10, 11]))  # two missing months: filled
    assert len(s) == 60 and s.stats.holes_filled == 1 and s.filled == 4
    s = _prepare(df.drop(index=range(30, 35)))  # five missing months: a new segment
    assert s.segment_starts.tolist() == [0, 30] and s.stats.long_holes == 1
    assert _utc(s.times[30:31]).strftime("%Y-%m-%d").tolist() == ["2003-12-01"]


def test_hourly_holes_make_segments_and_no_window_crosses_one():
    s = _prepare(_hourly_with_holes().rename(columns={"load": "v"}))
    assert s.grid == Grid.fixed(3600, 1800)
    assert len(s.segment_starts) == len(HOURLY_HOLES) + 1 and s.stats.holes_filled == 0
    assert s.stats.steps_missing == sum(HOURLY_HOLES.values())
    L, H = 24, 4
    x = np.stack([s.steps.astype(float)], axis=1)  # windows of step numbers: easy to check
    X, Y = windows(x, x, L, H, s.segment_starts)
    spans = np.concatenate([X[:, :, 0], Y[:, :, 0]], axis=1)  # inputs then targets
    assert np.all(np.diff(spans, axis=1) == 1)  # consecutive grid steps: no hole inside
    origins = window_origins(s.segment_starts, len(s), L, H)
    assert len(origins) == len(X) == sum(max(0, n - L - H + 1) for n in s.segment_lengths)
    seqs, fut, valid = segment_sequences(x, x, 96, 12, H, s.segment_starts, L + H)
    for seq, f, ok in zip(seqs, fut, valid, strict=True):
        real = np.concatenate([seq[ok, 0], f[ok][-1, :, 0]])  # steps seen, then the last targets
        assert np.all(np.diff(real) == 1)


def test_short_segments_are_skipped_and_counted():
    df = _frame("h", n=200)
    s = _prepare(df.drop(index=[*range(50, 56), *range(60, 66)]))  # a 4-row island
    assert s.segment_lengths.tolist() == [50, 4, 134]
    kept = D.drop_short_segments(s, 20)
    assert kept.segment_lengths.tolist() == [50, 134] and kept.segment_starts.tolist() == [0, 50]
    assert kept.stats.segments_skipped == 1 and kept.stats.rows_skipped == 4
    assert kept.stats.rows_used == 184
    assert "184 rows used of 188 read" in kept.stats.describe()


def test_split_keeps_segments_and_counts_pieces():
    s = _prepare(_hourly_with_holes().rename(columns={"load": "v"}))
    parts = D.split(s, (0.7, 0.15, 0.15), 28)
    for part in (parts.train, parts.val, parts.test):
        gaps_inside = np.flatnonzero(np.diff(part.steps) != 1) + 1
        assert part.segment_starts.tolist() == [0, *gaps_inside.tolist()]


# -- duplicates, order, errors -------------------------------------------------------------------
def test_duplicate_policies():
    df = _frame("h", n=30)
    dup = pd.concat([df.iloc[:11], df.iloc[[10]].assign(v=100.0), df.iloc[11:]], ignore_index=True)
    first, last, mean = (_prepare(dup, duplicates=p) for p in ("first", "last", "mean"))
    assert len(first) == len(last) == len(mean) == 30
    assert first.features[10, 0] == df.loc[10, "v"] and last.features[10, 0] == 100.0
    assert mean.features[10, 0] == pytest.approx((df.loc[10, "v"] + 100.0) / 2)
    assert mean.stats.duplicates_merged == 1
    with pytest.raises(D.DataError, match=r"duplicate timestamp .* at line 13 \(also at line 12\)"):
        _prepare(dup, duplicates="error", row_name=D.csv_rows)


def test_sort_keeps_file_lines_in_errors():
    df = _frame("h", n=30).iloc[::-1].reset_index(drop=True)
    with pytest.raises(D.DataError, match="not sorted: line 3 .* earlier than line 2"):
        _prepare(df, row_name=D.csv_rows)
    s = _prepare(df, sort=True)
    assert np.all(np.diff(s.times) == 3600)
    df.loc[7, "time"] = "2001-01-05T10:17:00Z"  # off the hourly grid, file line 9
    with pytest.raises(D.DataError, match=r"column 'time': line 9 \('2001-01-05T10:17:00Z'\)"):
        _prepare(df, sort=True, row_name=D.csv_rows)


def _cli_error(tmp_path: Path, capsys, df: pd.DataFrame, *extra: str, name: str = "d.csv") -> str:
    path = tmp_path / name
    if name.endswith(".parquet"):
        df.to_parquet(path)
    else:
        df.to_csv(path, index=False)
    args = ["fit", "--data", str(path), "--features", "v", "--targets", "v", "--no-report"]
    code = main([*args, "--seq-len", "4", "--horizon", "2", "--out", str(tmp_path / "m.seqcast"),
                 *extra])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("seqcast-train: error: "), err
    assert not (tmp_path / "m.seqcast").exists()
    return err[0]


def test_errors_name_the_line_and_the_column(tmp_path, capsys):
    df = _frame("D", n=60)
    df.loc[30, "time"] = "2001-01-31T12:00:00Z"  # noon: off the daily grid
    line = _cli_error(tmp_path, capsys, df)
    assert "column 'time': line 32 ('2001-01-31T12:00:00Z') is not on the inferred 1 d grid" in line
    df = _frame("D", n=60)
    df["v"] = df["v"].astype(str)  # a text column in Parquet: numbers and one stray note
    df.loc[5, "v"] = "n/a?"
    line = _cli_error(tmp_path, capsys, df, name="d.parquet")
    assert "feature column 'v' is not numeric: row 6 holds 'n/a?'" in line
    df = _frame("D", n=60)
    df.loc[9, "time"] = "yesterday"
    line = _cli_error(tmp_path, capsys, df)
    assert "column 'time': cannot parse timestamp 'yesterday' at line 11" in line


def test_mid_month_data_gets_a_hint(tmp_path, capsys):
    df = _frame("MS", n=40)
    df["time"] = (pd.to_datetime(df["time"]) + pd.Timedelta(days=14)).dt.strftime("%Y-%m-%d")
    line = _cli_error(tmp_path, capsys, df)
    assert "is not on the inferred" in line and "first (MS) or last (ME) day" in line


@pytest.mark.parametrize(
    ("alias", "says"),
    [
        ("xyz", "'xyz' is not a pandas offset alias; e.g. 30min"),
        ("H", "(did you mean h?)"),
        ("M", "(did you mean ME?)"),
        ("B", "'B' (BusinessDay) is not supported"),
    ],
)
def test_bad_interval_is_one_line(tmp_path, capsys, alias, says):
    line = _cli_error(tmp_path, capsys, _frame("h", n=60), "--interval", alias)
    assert f"--interval: {alias!r}" in line and says in line


def test_interval_that_does_not_fit_names_the_row(tmp_path, capsys):
    line = _cli_error(tmp_path, capsys, _frame("h", n=60), "--interval", "QS")
    assert "column 'time': line 3 ('2001-01-01T01:00:00Z') is not on the --interval QS" in line


def test_time_stats_describe_everything():
    text = TimeStats(rows_read=100, holes_filled=2, cells_filled=6, long_holes=1, segments=2,
                     rows_used=95, duplicates_merged=1).describe()  # fmt: skip
    assert text.startswith("95 rows used of 100 read, 1 duplicate rows merged, 2 holes")
    assert "1 longer holes (0 steps) -> 2 segments" in text


# -- end to end (TensorFlow, TFLite) -------------------------------------------------------------
TINY = {"units": (4,), "epochs": 2, "batch_size": 64, "report": False, "patience": 1}
TINY |= {"baselines": "naive"}  # AutoTheta is tested in test_baselines.py


@pytest.mark.tflite
@pytest.mark.slow
def test_monthly_air_passengers_trains_on_month_starts(tmp_path):
    from tsdata.fpppy import AirPassengers

    from seqcast.edge.model.backends import first_backend
    from seqcast.edge.model.bundle import read_bundle
    from seqcast.edge.model.runtime import LoadedModel
    from seqcast.train.evaluate import predict
    from seqcast.train.fit import FitOptions, fit

    AirPassengers.to_csv(tmp_path / "air.csv", index=False)
    o = FitOptions(data=str(tmp_path / "air.csv"), time_col="ds", features=["y"], targets=["y"],
                   seq_len=12, horizon=3, out=str(tmp_path / "air.seqcast"), **TINY)  # fmt: skip
    r = fit(o)
    m = read_bundle(r.bundle.path).manifest
    assert m.grid == Grid.months(1, "start", 0) and m.grid_spec == m.grid.to_json()
    assert m.max_fill == 3 and m.interval_s == m.grid.interval_s
    assert r.metrics["season_steps"] == 12 and r.metrics["data"]["grid"] == "month (start)"
    s = r.splits
    preds = predict(LoadedModel(r.bundle, first_backend()), r.scaler, s.val, s.test, [12])
    for k in (1, m.horizon):
        when = _utc(forecast_times(m.grid, preds.origin_times, k))
        assert (when.day == 1).all() and (when.hour == 0).all()
    assert (
        _utc(forecast_times(m.grid, preds.origin_times[:1], 1))[0]
        == _utc(s.test.times[m.seq_len : m.seq_len + 1])[0]
    )  # the forecast for the step after the origin is the next row's month


@pytest.mark.tflite
@pytest.mark.slow
def test_hourly_holes_train_with_defaults_and_stream_resets(tmp_path):
    from seqcast.edge.model.backends import first_backend
    from seqcast.edge.model.runtime import LoadedModel
    from seqcast.train.evaluate import predict, stream_predictions
    from seqcast.train.fit import FitOptions, fit

    _hourly_with_holes().to_csv(tmp_path / "w.csv", index=False)
    o = FitOptions(data=str(tmp_path / "w.csv"), time_col="time", features=["load", "temp"],
                   targets=["load"], seq_len=12, horizon=3, out=str(tmp_path / "w.seqcast"),
                   **TINY)  # fmt: skip
    r = fit(o)
    data = r.metrics["data"]
    assert data["long_holes"] == len(HOURLY_HOLES) and data["segments"] == len(HOURLY_HOLES) + 1
    assert r.bundle.manifest.grid == Grid.fixed(3600, 1800)
    test = r.splits.test
    assert len(test.segment_starts) >= 2  # the test split holds a hole
    model = LoadedModel(r.bundle, first_backend())
    preds = predict(model, r.scaler, r.splits.val, test, [24])
    at = np.searchsorted(test.times, preds.origin_times)  # every origin: L inputs and H targets
    for i in at:  # on consecutive grid steps, so none crosses a hole
        assert test.steps[i + 3] - test.steps[i - 11] == 14
    x = r.scaler.features(test)
    b = int(test.segment_starts[1])
    whole = stream_predictions(model, x, test.segment_starts)
    fresh = stream_predictions(model, x[b:])  # the second segment from zero state
    np.testing.assert_allclose(whole[b:], fresh, atol=1e-6)
