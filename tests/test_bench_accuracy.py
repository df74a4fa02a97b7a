"""`bench/accuracy`: the statsforecast helper reproduces the trainer's Theta, LightGBM's design
rows are the trainer's windows, the verdict and targets, and `python -m bench.accuracy --quick`
on canadian_gas writes every result with every method scored on the same origins.

No accuracy number is asserted: the benchmark reports its goals, timed tests do not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("statsforecast")

from bench.accuracy import _series_list, verdict  # noqa: E402
from bench.accuracy_lgbm import design, lgbm_forecasts  # noqa: E402
from bench.accuracy_report import targets  # noqa: E402
from bench.accuracy_stats import stats_forecasts  # noqa: E402
from seqcast.edge import calendar  # noqa: E402
from seqcast.edge.timegrid import Grid  # noqa: E402
from seqcast.train.baselines import theta  # noqa: E402
from seqcast.train.data import Series, Splits  # noqa: E402
from seqcast.train.windows import future_targets, window_origins  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
HOUR = 3600.0


def _series(values: np.ndarray, steps: np.ndarray) -> Series:
    v = np.asarray(values, np.float64).reshape(len(steps), -1)
    starts = np.concatenate([[0], np.flatnonzero(np.diff(steps) != 1) + 1]).astype(np.int64)
    return Series(
        times=steps * HOUR,
        steps=np.asarray(steps, np.int64),
        features=v,
        targets=v[:, :1],
        feature_names=[f"f{j}" for j in range(v.shape[1])],
        target_names=["f0"],
        grid=Grid.fixed(HOUR),
        segment_starts=starts,
        stats=None,  # type: ignore[arg-type]  # not read here
    )


def _daily(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 100 + 0.02 * t + 20 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 1, n)


def test_the_generic_helper_with_autotheta_is_the_trainers_theta():
    values = _daily(700)
    steps = np.concatenate([np.arange(400), np.arange(430, 730)])  # a hole in the test split
    whole = _series(values, steps)
    history, test = whole.slice(0, 500), whole.slice(500, 700)
    origins = window_origins(test.segment_starts, len(test), 24, 4)
    from statsforecast.models import AutoTheta

    ours = stats_forecasts(AutoTheta, history, test, origins, 24, 4, phase_aligned=False)
    trainers = theta(history, test, origins, 24, 4)
    assert ours.forecasts.shape == (len(origins), 4, 1)
    np.testing.assert_array_equal(ours.forecasts, trainers.forecasts)
    assert ours.fallbacks == trainers.fallbacks and ours.model == trainers.model


def test_autoets_forecasts_every_origin_and_names_its_model():
    from statsforecast.models import AutoETS

    whole = _series(_daily(600), np.arange(600))
    history, test = whole.slice(0, 450), whole.slice(450, 600)
    origins = window_origins(test.segment_starts, len(test), 24, 3)
    r = stats_forecasts(AutoETS, history, test, origins, 24, 3)
    truth = future_targets(test.targets, 3)[origins]
    persistence = np.repeat(test.targets[origins][:, None], 3, axis=1)
    assert r.fallbacks == 0 and r.model.startswith("ETS(")
    # a clean daily cycle: a seasonal ETS must beat repeating the last value
    assert np.mean(np.abs(r.forecasts - truth)) < np.mean(np.abs(persistence - truth))


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 40), min_size=1, max_size=4),
    holes=st.lists(st.integers(5, 9), min_size=3, max_size=3),
    seq_len=st.integers(1, 6),
    horizon=st.integers(1, 4),
    with_calendar=st.booleans(),
)
def test_design_rows_are_the_trainers_windows(lengths, holes, seq_len, horizon, with_calendar):
    steps = np.concatenate(
        [
            np.arange(n) + sum(lengths[:i]) + sum(holes[:i])
            for i, n in enumerate(lengths)  # segments separated by holes
        ]
    )
    values = np.stack([steps * 1.5, -steps.astype(float)], axis=1)  # (N, 2): row-identifying
    part = _series(values, steps)
    origins = window_origins(part.segment_starts, len(part), seq_len, horizon)
    if len(origins) == 0:
        return
    names = ("hour_of_day",) if with_calendar else ()
    d = design(part, seq_len, horizon, names)
    np.testing.assert_array_equal(d.origins, origins)
    for m, t in enumerate(origins):
        window = values[t - seq_len + 1 : t + 1]  # (L, F), oldest first
        assert steps[t] - steps[t - seq_len + 1] == seq_len - 1  # one segment
        np.testing.assert_allclose(d.x[m, : 2 * seq_len], window.reshape(-1), rtol=1e-6)
        if with_calendar:
            cal = calendar.columns(names, part.times[[t]])[0]
            np.testing.assert_allclose(d.x[m, 2 * seq_len :], cal, atol=1e-6)
        else:
            assert d.x.shape[1] == 2 * seq_len
        np.testing.assert_array_equal(d.truth[m], values[t + 1 : t + 1 + horizon, :1])
        assert d.last[m, 0] == values[t, 0]


def test_lightgbm_learns_the_daily_cycle_and_the_calendar_helps():
    pytest.importorskip("lightgbm")
    n = 24 * 60
    whole = _series(_daily(n, seed=3), np.arange(n))
    splits = Splits(whole.slice(0, 1000), whole.slice(1000, 1200), whole.slice(1200, n))
    test = splits.test
    origins = window_origins(test.segment_starts, len(test), 6, 4)
    truth = future_targets(test.targets, 4)[origins]
    plain = lgbm_forecasts(splits, 6, 4)
    timed = lgbm_forecasts(splits, 6, 4, ("hour_of_day",))
    persistence = np.repeat(test.targets[origins][:, None], 4, axis=1)
    mae = {
        k: float(np.mean(np.abs(v - truth)))
        for k, v in (("plain", plain.forecasts), ("timed", timed.forecasts), ("last", persistence))
    }
    np.testing.assert_array_equal(plain.origins, origins)
    assert len(plain.rounds) == 4  # one model per horizon step (one target)
    assert mae["plain"] < mae["last"]
    # 6 lags do not pin the phase of a 24-hour cycle down; the hour of day does
    assert mae["timed"] < mae["plain"]


def _row(method: str, kind: str, mae: float) -> dict:
    return {"method": method, "kind": kind, "mae": {"mean": mae, "min": mae, "max": mae, "n": 1}}


def test_verdict_names_the_best_baseline_and_the_naive_bar():
    rows = [
        _row("seqcast stream", "seqcast", 50.0),
        _row("persistence", "baseline", 240.0),
        _row("seasonal_naive_48", "baseline", 320.0),
        _row("theta", "baseline", 80.0),
        _row("lightgbm_calendar", "baseline", 45.0),
    ]
    v = verdict(rows)
    assert v["best_baseline"] == "lightgbm_calendar" and not v["beats_best"]
    assert v["best_simple"] == "theta" and v["beats_naive_and_theta"]
    assert v["gain"] == pytest.approx(1 - 50 / 45)


def test_targets_report_the_issue_goals_without_inventing_coverage():
    rows = [
        _row("seqcast stream", "seqcast", 50.0),
        {**_row("seqcast stream dynamic", "seqcast", 50.5), "bundle_bytes": {"max": 90_000}},
        _row("seqcast stream float16", "seqcast", 50.0),
        _row("theta", "baseline", 80.0),
    ]
    series = {
        "name": "vic_elec",
        "methods": rows,
        "verdict": verdict(rows),
        "runs": [{"train_seconds": 200.0, "fit_seconds": 260.0}],
    }
    got = {t["name"]: t for t in targets({"series": [series]})}
    coverage = "vic_elec quantile coverage vs nominal (worst)"
    assert got[coverage]["met"] is None  # no interval run: nothing invented
    series["intervals"] = {
        "quantiles": [0.1, 0.9],
        "stream": {"coverage": {"p10": 0.12, "p90": 0.84}},
        "window": {"coverage": {"p10": 0.09, "p90": 0.91}},
    }
    got = {t["name"]: t for t in targets({"series": [series]})}
    assert got[coverage]["measured"] == pytest.approx(6.0) and got[coverage]["met"] is False
    assert got["vic_elec stream test MAE"]["met"] is True
    assert got["vic_elec dynamic-range bundle"]["measured"] == 90.0
    assert got["vic_elec dynamic MAE vs float32"]["measured"] == pytest.approx(1.0)
    assert got["vic_elec stream MAE / best of naive and Theta"]["met"] is True


def test_an_unknown_series_is_one_clear_line():
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match="unknown series 'nope'; known: vic_elec"):
        _series_list("vic_elec,nope")


@pytest.mark.slow
@pytest.mark.tflite
@pytest.mark.train
def test_quick_run_writes_every_method_on_the_same_origins(tmp_path: Path) -> None:
    pytest.importorskip("lightgbm")
    out = tmp_path / "results"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    done = subprocess.run(
        [sys.executable, "-m", "bench.accuracy", "--quick", "--series", "canadian_gas"]
        + ["--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    for ext in ("json", "md", "png"):
        assert (out / f"accuracy.{ext}").stat().st_size > 0
    assert (out / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    doc = json.loads((out / "accuracy.json").read_text())
    assert doc["quick"] is True and doc["complete"] is True and doc["seeds"] == [0]
    (s,) = doc["series"]
    assert s["name"] == "canadian_gas" and s["seq_len"] == 24 and s["horizon"] == 3
    methods = {r["method"]: r for r in s["methods"]}
    assert {
        "seqcast stream",
        "seqcast window",
        "seqcast stream dynamic",
        "seqcast stream float16",
        "persistence",
        "seasonal_naive_12",
        "theta",
        "ets",
        "lightgbm",
        "lightgbm_calendar",
    } <= set(methods)
    assert s["origins"] > 0
    assert {r["origins"] for r in s["methods"]} == {s["origins"]}
    for r in s["methods"]:
        assert np.isfinite(r["mae"]["mean"]) and r["mae"]["n"] == 1, r["method"]
    assert methods["lightgbm_calendar"]["info"]["calendar"] == ["month_of_year"]
    iv = s["intervals"]  # the interval run: coverage per quantile, through the interpreter
    assert iv["quantiles"] == [0.1, 0.9] and set(iv["stream"]["coverage"]) == {"p10", "p90"}
    assert 0 <= iv["stream"]["coverage"]["p10"] <= iv["stream"]["coverage"]["p90"] <= 1
    assert "p10 coverage" in (out / "accuracy.md").read_text()
    cal = iv["calibration"]["stream"]  # a short monthly validation split: the width calibrated
    assert cal["method"] == "width" and set(cal["quantiles"]) == {"p10", "p90"}
    assert (
        f"stream (width, {cal['origins']} validation origins) p10 ×"
        in (out / "accuracy.md").read_text()
    )
    (run,) = s["runs"]
    assert run["dynamic"]["bundle_bytes"] < run["bundle_bytes"]
    assert run["predict"] in ("level", "change", "seasonal", "smooth")  # --predict auto's choice
    assert f"predict {run['predict']}" in md_row(out, "seqcast stream")
    assert s["auto"] == {"status": "not run", "error": "--quick"}
    assert s["verdict"]["best_baseline"] in methods
    names = {t["name"] for t in doc["targets"]}
    assert "canadian_gas dynamic MAE vs float32" in names
    md = (out / "accuracy.md").read_text()
    assert "### canadian_gas" in md and "| seqcast stream |" in md and "| target |" in md
    assert "| lightgbm_calendar |" in md


def md_row(out: Path, method: str) -> str:
    return next(
        line
        for line in (out / "accuracy.md").read_text().splitlines()
        if line.startswith(f"| {method} |")
    )


def test_merge_joins_the_series_of_separate_runs(tmp_path: Path) -> None:
    from bench.accuracy import merge

    def doc(name: str, seeds: list[int], stream: float) -> dict:
        rows = [
            _row("seqcast stream", "seqcast", stream),
            _row("seqcast stream dynamic", "seqcast", stream),
            _row("seqcast stream float16", "seqcast", stream),
            _row("theta", "baseline", 1.0),
        ]
        series = {"name": name, "methods": rows, "verdict": verdict(rows), "runs": []}
        return {
            "name": "accuracy",
            "quick": False,
            "seeds": seeds,
            "machine": {"date": "2026-12-02"},
            "series": [series],
            "elapsed_s": 10.0,
            "complete": True,
        }

    paths = [tmp_path / "a.json", tmp_path / "b.json"]
    paths[0].write_text(json.dumps(doc("pedestrian", [0], 0.5)))
    paths[1].write_text(json.dumps(doc("canadian_gas", [0, 1, 2], 2.0)))
    merged = merge(paths)
    assert [s["name"] for s in merged["series"]] == ["pedestrian", "canadian_gas"]
    assert merged["seeds"] == [0, 1, 2] and merged["elapsed_s"] == 20.0
    met = {t["name"]: t["met"] for t in merged["targets"]}
    assert met["pedestrian stream MAE / best of naive and Theta"] is True
    assert met["canadian_gas stream MAE / best of naive and Theta"] is False
