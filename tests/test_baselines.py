"""The baselines every fit report scores (persistence, seasonal naive at each natural season,
AutoTheta from statsforecast) and the verdict against the best of them."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("statsforecast")

from seqcast.edge.timegrid import Grid  # noqa: E402
from seqcast.train.baselines import (  # noqa: E402
    baseline_forecasts,
    seasons_for,
    theta,
    verdict,
    verdict_line,
)
from seqcast.train.data import Series  # noqa: E402

HOUR = 3600.0


def _series(values: np.ndarray, steps: np.ndarray, interval_s: float = HOUR) -> Series:
    v = np.asarray(values, np.float64).reshape(-1, 1)
    starts = np.concatenate([[0], np.flatnonzero(np.diff(steps) != 1) + 1]).astype(np.int64)
    return Series(
        times=steps * interval_s,
        steps=np.asarray(steps, np.int64),
        features=v,
        targets=v,
        feature_names=["y"],
        target_names=["y"],
        grid=Grid.fixed(interval_s),
        segment_starts=starts,
        stats=None,  # type: ignore[arg-type]  # not read by the baselines
    )


def _daily_with_trend(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 100 + 0.05 * t + 20 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 1, n)


@pytest.mark.parametrize(
    ("grid", "seasons"),
    [
        (Grid.fixed(1800), [48, 336]),
        (Grid.fixed(3600), [24, 168]),
        (Grid.fixed(600), [144, 1008]),
        (Grid.fixed(86400), [7]),
        (Grid.fixed(7 * 86400), []),
        (Grid.fixed(7000), []),
        (Grid.months(1, "start"), [12]),
        (Grid.months(3, "end"), [4]),
        (Grid.months(12, "start"), []),
    ],
)
def test_seasons_follow_the_grid(grid, seasons):
    assert seasons_for(grid) == seasons


def _split(values: np.ndarray, steps: np.ndarray, n_hist: int) -> tuple[Series, Series]:
    return _series(values[:n_hist], steps[:n_hist]), _series(values[n_hist:], steps[n_hist:])


def test_theta_beats_the_naive_forecasts_on_a_trending_season():
    y = _daily_with_trend(24 * 80)
    history, test = _split(y, np.arange(len(y)), 24 * 60)
    origins = np.arange(24 * 10, len(test) - 4)
    preds, info = baseline_forecasts(history, test, origins, [24, 168], 4)
    truth = np.stack([test.targets[origins + k] for k in range(1, 5)], axis=1)  # (M, H, T)
    mae = {k: float(np.mean(np.abs(v - truth))) for k, v in preds.items()}
    assert set(mae) == {"persistence", "seasonal_naive_24", "seasonal_naive_168", "theta"}
    assert info["theta"]["season"] == 24 and info["theta"]["fallbacks"] == 0
    assert mae["theta"] < min(mae["persistence"], mae["seasonal_naive_168"]), mae


def test_theta_never_looks_across_a_hole_or_into_the_future():
    y = _daily_with_trend(24 * 70)
    steps = np.arange(len(y))
    steps[24 * 62 :] += 500  # a long hole inside the test split
    history, test = _split(y, steps, 24 * 60)
    origins = np.arange(24 * 1, len(test) - 4)
    base = theta(history, test, origins, 24, 4).forecasts

    before_hole = y.copy()
    before_hole[24 * 61 : 24 * 62] += 5000  # the last day before the hole
    _, test2 = _split(before_hole, steps, 24 * 60)
    changed = theta(history, test2, origins, 24, 4).forecasts
    after = test.steps[origins] >= steps[24 * 62]
    assert after.any() and (~after).any()
    np.testing.assert_array_equal(changed[after], base[after])
    assert not np.array_equal(changed[~after], base[~after])

    future = y.copy()
    future[-48:] += 5000
    _, test3 = _split(future, steps, 24 * 60)
    late = theta(history, test3, origins, 24, 4).forecasts
    early = origins + 24 * 60 < len(y) - 48  # origins whose own past is untouched
    np.testing.assert_array_equal(late[early], base[early])


def _metrics(**maes: float) -> dict:
    return {k: {"mae": v, "rmse": v} for k, v in maes.items()} | {"origins": 10, "baselines": {}}


def test_the_verdict_is_against_the_best_baseline():
    m = _metrics(stream=5.0, window=6.0, persistence=9.0, seasonal_naive_24=7.0, theta=4.0)
    m["verdict"] = verdict(m)
    assert m["verdict"] == {
        "model": "stream",
        "best_baseline": "theta",
        "beats": False,
        "gain": pytest.approx(-0.25),
    }
    line = verdict_line(m)
    assert line.startswith("warning: the model does NOT beat the best baseline")
    assert "theta 4.000" in line and "seqcast-train auto" in line

    m = _metrics(window=3.0, persistence=9.0, seasonal_naive_24=7.0, theta=4.0)
    m["verdict"] = verdict(m)
    assert m["verdict"]["model"] == "window" and m["verdict"]["beats"]
    assert verdict_line(m) == (
        "test MAE: window 3.000 beats the best baseline, theta 4.000 (25.0% lower)"
    )


@pytest.mark.tflite
@pytest.mark.slow
def test_a_model_a_baseline_beats_gets_a_warning_and_require_beat_fails(tmp_path, capsys):
    """A noiseless daily cycle: the daily seasonal naive is exact, no small model can beat it."""
    import pandas as pd

    from seqcast.edge.model.bundle import read_bundle
    from seqcast.train.cli import EXIT_BEATEN, main

    t = np.arange(24 * 40)
    times = pd.to_datetime(1.7e9 + t * HOUR, unit="s", utc=True)
    y = 50 + 10 * np.sin(2 * np.pi * t / 24)
    pd.DataFrame({"time": times.strftime("%Y-%m-%dT%H:%M:%SZ"), "y": y}).to_csv(
        tmp_path / "cycle.csv", index=False
    )
    out = tmp_path / "m.seqcast"
    args = ["fit", "--data", str(tmp_path / "cycle.csv"), "--time-col", "time", "--features", "y"]
    args += ["--targets", "y", "--seq-len", "6", "--horizon", "2", "--units", "4", "--epochs", "1"]
    code = main([*args, "--no-report", "--require-beat", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == EXIT_BEATEN
    assert "warning: the model does NOT beat the best baseline" in err
    m = read_bundle(out).manifest.metrics  # the bundle is still written, with the verdict
    best = m["verdict"]["best_baseline"]
    assert best.startswith("seasonal_naive_") and not m["verdict"]["beats"]
    assert m[best]["mae"] < 1e-9 < m["stream"]["mae"]


def test_theta_fits_on_the_longest_run_when_the_last_one_is_short():
    from seqcast.train.baselines import _fit_rows, _run_starts

    steps = np.array([0, 1, 2, 3, 4, 5, 9, 10, 20, 21, 22])
    runs = _run_starts(steps)
    assert runs.tolist() == [0, 0, 0, 0, 0, 0, 6, 6, 8, 8, 8]
    assert _fit_rows(runs, fit_rows=100, min_rows=3) == slice(8, 11)  # the last run is enough
    assert _fit_rows(runs, fit_rows=100, min_rows=4) == slice(0, 6)  # else the longest
    assert _fit_rows(runs, fit_rows=4, min_rows=4) == slice(2, 6)


def test_a_baseline_that_cannot_be_fitted_is_reported_not_fatal():
    y = _daily_with_trend(24 * 3)
    history, test = _split(y, np.arange(len(y)), 3)  # three rows of history: nothing to fit
    origins = np.arange(2, len(test) - 4)
    preds, info = baseline_forecasts(history, test, origins, [24], 4)
    assert "theta" not in preds and info["theta"].startswith("not scored: AutoTheta")
    assert set(preds) == {"persistence", "seasonal_naive_24"}
