"""Issue 10, the device side: the daemon puts raw samples on the bundle's grid exactly as the
trainer put its rows there, through the real interpreter and a real mosquitto.

- sub-interval samples give the forecasts of the series resampled by pandas (mean per bucket,
  closed left, label left), stamped on the labels;
- a hole of at most `max_fill` steps is filled as the trainer fills it (train/gaps.py), and the
  filled steps get their forecasts too;
- a longer hole restarts the stream: nothing until `min_history` steps of the new segment, then
  the forecasts of that segment from zero state;
- an irregular, gappy series gives the forecasts of the trainer's own path: pandas resampling,
  `train.data.prepare` (fill and segments) and `train.evaluate.stream_predictions`;
- calendar (monthly) bundles: tests/test_time_calendar.py.

One daemon serves all the cases on the 30-minute bundle (one stream each).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from tests.daemon_harness import DaemonProcess, offline_forecasts, write_config
from tests.mqtt_clients import Collector, Sender

pytestmark = [pytest.mark.broker, pytest.mark.tflite, pytest.mark.slow]

INTERVAL = 1800.0
T0 = 1_700_000_000.0  # a label of small_bundle's grid (its origin is 800 s: xx:13:20, xx:43:20)
TOL = {"rtol": 1e-6, "atol": 1e-6}  # the precision test_faults.py and test_clocks.py use

Sample = tuple[float, list[float]]
Forecast = tuple[float, list[list[float]]]  # (origin ts, [[ts_k, target values...] per step])


# -- the series ------------------------------------------------------------------------------
def level(t: float) -> list[float]:
    """load, temp at t (seconds since T0): the synthetic series' daily cycle, in its range."""
    day = 2 * np.pi * t / 86400.0
    return [float(100 + 30 * np.sin(day) + 0.002 * t / 60), float(20 + 3 * np.cos(day))]


def on_grid(steps: list[int]) -> list[Sample]:
    return [(T0 + k * INTERVAL, level(k * INTERVAL)) for k in steps]


def sub_interval(n: int) -> list[Sample]:
    """Six samples per interval, every 5 minutes from 1 minute after the label, none on it;
    values change within the interval (and a ripple makes the mean differ from the midpoint)."""
    out = []
    for k in range(n):
        for j in range(6):
            t = k * INTERVAL + 60 + 300 * j
            load, temp = level(t)
            out.append((T0 + t, [load + 4 * (-1) ** j + j, temp - 0.3 * j]))
    return out


HOLE2 = [*range(10), *range(12, 24)]  # steps 10 and 11 missing
HOLE10_PRE, HOLE10_POST = list(range(16)), list(range(26, 38))  # steps 16..25 missing


def irregular(seed: int) -> tuple[list[Sample], list[int]]:
    """1 to 4 samples at random instants inside each present interval (never on a label),
    holes of 1, 2, 3 and 1-3 missing steps, and one of 4 (the shortest the trainer does not
    fill), in random order; present runs of 4 to 8 steps, the first and last of 8."""
    rng = np.random.default_rng(seed)
    holes = [1, 2, 3, int(rng.integers(1, 4)), 4]
    rng.shuffle(holes)
    present, k = [], 0
    for i, hole in enumerate([*holes, 0]):
        run = 8 if i in (0, len(holes)) else int(rng.integers(4, 9))
        present += range(k, k + run)
        k += run + hole
    samples = []
    for k in present:
        for off in np.sort(rng.uniform(1.0, INTERVAL - 1.0, int(rng.integers(1, 5)))):
            t = k * INTERVAL + float(off)
            load, temp = level(t)
            samples.append((T0 + t, [load + float(rng.normal(0, 2)), temp + float(rng.normal())]))
    return samples, [int(h) for h in holes]


PROPERTY_SEED = 20240610
PROP_SAMPLES, PROP_HOLES = irregular(PROPERTY_SEED)


def after(samples: list[Sample]) -> Sample:
    """One sample in the interval after the last one: it completes the last interval (the
    device steps an interval when a later one starts, or after `grace` intervals of silence)."""
    last = samples[-1][0]
    return (T0 + (np.floor((last - T0) / INTERVAL) + 1) * INTERVAL + 60.0, samples[-1][1])


# -- references ------------------------------------------------------------------------------
def resampled(samples: list[Sample], rule: str, origin: float) -> list[Sample]:
    """pandas' mean per bucket [t, t + interval) labelled t, as the trainer's data would be
    prepared. `origin`: a label of the grid (pandas' default, the first day's midnight, is not
    on this bundle's grid, whose phase is 800 s)."""
    import pandas as pd

    idx = pd.to_datetime([ts for ts, _ in samples], unit="s", utc=True)
    df = pd.DataFrame([v for _, v in samples], index=idx, columns=["load", "temp"])
    kw = {} if rule == "MS" else {"origin": pd.Timestamp(origin, unit="s", tz="UTC")}
    out = df.resample(rule, closed="left", label="left", **kw).mean().dropna()
    secs = (out.index - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
    return [
        (float(t), [float(a), float(b)]) for t, (a, b) in zip(secs, out.to_numpy(), strict=True)
    ]


def stream_reference(bundle: Path, frame_samples: list[Sample]):
    """The trainer's path: the on-grid rows through `train.data.prepare` (grid, short holes
    filled, long holes -> segments) and `train.evaluate.stream_predictions` (zero state at every
    segment start), unscaled as the trainer's evaluation does. -> (forecasts every origin with
    min_history steps of its segment, the prepared series)."""
    import pandas as pd

    from seqcast.edge.model.bundle import read_bundle
    from seqcast.edge.model.runtime import load_model
    from seqcast.train import data as D
    from seqcast.train.evaluate import stream_predictions

    model, _ = load_model(read_bundle(bundle))
    m = model.bundle.manifest
    table = pd.DataFrame(
        {
            "time": [ts for ts, _ in frame_samples],
            "load": [v[0] for _, v in frame_samples],
            "temp": [v[1] for _, v in frame_samples],
        }
    )
    series = D.prepare(table, "time", ["load", "temp"], ["load"], max_fill=m.max_fill)
    sc = m.scaler
    scaler = D.FittedScaler(
        *(
            np.asarray(v, np.float64)
            for v in (sc.feature_mean, sc.feature_std, sc.target_mean, sc.target_std)
        ),
        calendar=tuple(m.calendar),
    )
    y = scaler.unscale_targets(
        stream_predictions(model, scaler.features(series), series.segment_starts)
    )  # (N, H, T)
    seg = np.searchsorted(series.segment_starts, np.arange(len(series)), side="right") - 1
    since = np.arange(len(series)) - series.segment_starts[seg] + 1  # steps into its segment
    out = []
    for i in np.flatnonzero(since >= m.min_history):
        ts = float(series.times[i])
        values = y[i].astype(np.float32).astype(np.float64).tolist()  # published as float32
        out.append((ts, [[ts + (k + 1) * m.interval_s, *row] for k, row in enumerate(values)]))
    return out, series


# -- the daemon ------------------------------------------------------------------------------
def payload(ts: float, v: list[float]) -> bytes:
    return json.dumps({"ts": ts, "load": v[0], "temp": v[1]}).encode()


@dataclass
class Served:
    forecasts: dict[str, dict[float, list[list[float]]]]  # stream -> origin ts -> rows
    duplicates: dict[str, int]
    log: str
    docs: list[dict] = field(default_factory=list)  # every forecast message, parsed


def serve(
    broker,
    bundle: Path,
    tmp: Path,
    streams: dict[str, list[Sample]],
    expected: dict[str, int],
    pay=payload,
) -> Served:
    """Start a daemon, send every stream's samples (QoS 1, in order), wait until each stream
    has its `expected` number of distinct forecasts (and a moment for any unexpected one),
    return what was published."""
    prefix = f"t/parity-{tmp.name}"
    cfg = write_config(
        tmp / "edge.toml",
        broker,
        bundle,
        prefix,
        # a forward jump past max_gap (the long holes) is held this long for older samples
        streams={"align": "mean", "grace": 1.0, "reorder_s": 0.3},
    )
    collector = Collector(broker.host, broker.port, [f"{prefix}/forecasts/+"])
    sender = Sender(broker.host, broker.port)
    daemon = DaemonProcess.start(cfg)
    try:
        daemon.wait_for_log("seqcast-edge serving")
        n = 0
        for name, samples in streams.items():
            for ts, v in samples:
                sender.send(f"{prefix}/sensors/{name}/data", pay(ts, v), n)
                n += 1
        assert sender.wait_all_accepted(n, 20), f"broker accepted {len(sender.accepted)} of {n}"

        def counts() -> dict[str, int]:
            seen = {(d["stream"], d["ts"]) for d in collector.forecasts()}
            return {name: sum(s == name for s, _ in seen) for name in streams}

        collector.wait_for(lambda: all(counts()[s] >= n for s, n in expected.items()), 30)
        # anything more shows up
        collector.wait_for(lambda: any(counts()[s] > n for s, n in expected.items()), 1.0)
        docs = collector.forecasts()
    finally:
        daemon.kill()
        collector.close()
        sender.close()
    got: dict[str, dict[float, list]] = {}
    dups: dict[str, int] = {}
    for doc in docs:
        rows = [[f["ts"], *(v for k, v in f.items() if k != "ts")] for f in doc["forecast"]]
        seen = got.setdefault(doc["stream"], {})
        if doc["ts"] in seen:
            assert rows == seen[doc["ts"]], "a duplicate (QoS 1) must be the same forecast"
            dups[doc["stream"]] = dups.get(doc["stream"], 0) + 1
        seen[doc["ts"]] = rows
    return Served(got, dups, daemon.log(), docs)


def check(served: Served, stream: str, want: list[Forecast]) -> None:
    """Exactly the expected forecasts: the same origins, rows stamped exactly, values equal at
    the model's float32 precision."""
    got = served.forecasts.get(stream, {})
    want_d = dict(want)
    missing, extra = sorted(set(want_d) - set(got)), sorted(set(got) - set(want_d))
    assert not missing and not extra, (
        f"{stream}: {len(missing)} forecasts missing (first {missing[:3]}), "
        f"{len(extra)} unexpected (first {extra[:3]})"
    )
    for ts, rows in want_d.items():
        assert [r[0] for r in got[ts]] == [r[0] for r in rows], f"{stream} at {ts}: row times"
        np.testing.assert_allclose(
            [r[1:] for r in got[ts]], [r[1:] for r in rows], **TOL, err_msg=f"{stream} at {ts}"
        )


def filled_on_grid(bundle: Path, samples: list[Sample]) -> tuple[list[Sample], object]:
    """The on-grid samples with short holes filled by the trainer's own `fill_and_segment`."""
    from seqcast.edge.model.bundle import read_bundle
    from seqcast.train.gaps import TimeStats, fill_and_segment

    m = read_bundle(bundle).manifest
    steps = np.array([round((ts - T0) / INTERVAL) for ts, _ in samples], np.int64)
    values = np.array([v for _, v in samples], np.float64)
    reg = fill_and_segment(steps, values, m.max_fill, TimeStats(rows_read=len(samples)))
    filled = [
        (T0 + int(k) * INTERVAL, v.tolist()) for k, v in zip(reg.steps, reg.values, strict=True)
    ]
    return filled, reg


@pytest.fixture(scope="module")
def grid_run(broker, small_bundle, tmp_path_factory) -> Served:
    """Every 30-minute case, one stream each, through one daemon."""
    from seqcast.edge.model.bundle import read_bundle

    m = read_bundle(small_bundle).manifest
    assert m.grid.on_grid(T0) and m.grid.interval_s == INTERVAL and m.max_fill == 3
    sub = sub_interval(20)
    pre, post = on_grid(HOLE10_PRE), on_grid(HOLE10_POST)
    streams = {
        "sub": [*sub, after(sub)],
        "hole2": on_grid(HOLE2),
        "hole10": pre + post,
        "prop": [*PROP_SAMPLES, after(PROP_SAMPLES)],
    }
    filled = filled_on_grid(small_bundle, on_grid(HOLE2))[0]
    expected = {
        "sub": len(offline_forecasts(small_bundle, resampled(sub, "1800s", T0), "stream")),
        "hole2": len(offline_forecasts(small_bundle, filled, "stream")),
        "hole10": len(offline_forecasts(small_bundle, pre, "stream"))
        + len(offline_forecasts(small_bundle, post, "stream")),
        "prop": len(stream_reference(small_bundle, resampled(PROP_SAMPLES, "1800s", T0))[0]),
    }
    return serve(broker, small_bundle, tmp_path_factory.mktemp("grid"), streams, expected)


# -- 1. sub-interval samples -----------------------------------------------------------------
def test_sub_interval_samples_give_the_forecasts_of_the_pandas_resampled_series(
    grid_run, small_bundle
):
    frame = resampled(sub_interval(20), "1800s", T0)
    assert len(frame) == 20 and all(abs((ts - T0) % INTERVAL) < 1e-6 for ts, _ in frame)
    want = offline_forecasts(small_bundle, frame, "stream")
    assert len(want) == 20 - 6 + 1
    check(grid_run, "sub", want)
    # not a trivially equal reference: the last sample of each interval would differ
    last = offline_forecasts(small_bundle, sub_interval(20)[5::6], "stream")
    assert max(abs(a[1][0][1] - b[1][0][1]) for a, b in zip(want, last, strict=True)) > 1e-3


# -- 2. a short hole is filled as the trainer fills it ---------------------------------------
def test_a_two_step_hole_is_filled_as_the_trainer_fills_it_and_forecast_at_the_filled_steps(
    grid_run, small_bundle
):
    filled, reg = filled_on_grid(small_bundle, on_grid(HOLE2))
    assert reg.stats.holes_filled == 1 and reg.stats.cells_filled == 4 and len(filled) == 24
    want = offline_forecasts(small_bundle, filled, "stream")
    check(grid_run, "hole2", want)
    holes = [T0 + 10 * INTERVAL, T0 + 11 * INTERVAL]
    assert all(ts in grid_run.forecasts["hole2"] for ts in holes)  # the filled steps' own
    # the fill matters: stepping the samples as they came (no fill) gives other forecasts
    unfilled = dict(offline_forecasts(small_bundle, on_grid(HOLE2), "stream"))
    ts = T0 + 12 * INTERVAL
    assert abs(unfilled[ts][0][1] - dict(want)[ts][0][1]) > 1e-4


# -- 3. a long hole restarts the stream ------------------------------------------------------
def test_a_ten_step_hole_restarts_the_stream_from_zero_state(grid_run, small_bundle):
    from seqcast.edge.model.bundle import read_bundle

    min_history = read_bundle(small_bundle).manifest.min_history
    pre, post = on_grid(HOLE10_PRE), on_grid(HOLE10_POST)
    got = grid_run.forecasts.get("hole10", {})
    first_after = min((ts for ts in got if ts > pre[-1][0]), default=None)
    assert first_after == post[min_history - 1][0], "forecasts resumed too early or too late"
    check(
        grid_run,
        "hole10",
        offline_forecasts(small_bundle, pre, "stream")
        + offline_forecasts(small_bundle, post, "stream"),
    )
    # zero state matters: the post-hole forecasts with the pre-hole state carried differ
    carried = dict(offline_forecasts(small_bundle, pre + post, "stream"))
    assert abs(carried[first_after][0][1] - got[first_after][0][1]) > 1e-4


# -- 4. trainer and device agree on an irregular, gappy series -------------------------------
def test_an_irregular_gappy_series_gives_the_trainers_stream_evaluation(grid_run, small_bundle):
    """The trainer has no resampling of raw off-grid samples (prepare refuses rows off the
    grid), so its input is the pandas mean per bucket; from there on it is the trainer's code."""
    frame = resampled(PROP_SAMPLES, "1800s", T0)
    want, series = stream_reference(small_bundle, frame)
    s = series.stats
    assert sorted(PROP_HOLES)[-1] == 4 and all(1 <= h <= 3 for h in sorted(PROP_HOLES)[:-1])
    assert s.holes_filled == 4 and s.long_holes == 1 and len(series.segment_starts) == 2
    columns = len(series.feature_names) + len(series.target_names)  # load is both
    assert s.cells_filled == columns * (sum(PROP_HOLES) - 4)
    assert len(frame) > 0 and len(PROP_SAMPLES) > 1.5 * len(frame)  # several per interval
    check(grid_run, "prop", want)


# -- 5. a calendar bundle --------------------------------------------------------------------
